//! The component graph: who reads whom. Checks that every input exists, that named outputs
//! (`ID.NAME`) are real, that IDs are unique and that there is no cycle; renders DOT.
//!
//! Sinks have no main output, but some sink types have named ones: `ID.dead_letter` (see
//! [`crate::config::sink_named_outputs`]). Such an edge can close a cycle through sinks
//! (a sink reading its own dead letter, directly or through other components): rejected.

use crate::config::{sink_named_outputs, sink_types_with_output, Config, Reporter};
use std::collections::HashMap;

/// Where an input edge starts.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Output {
    pub component: String,
    /// Port: 0 = main output, 1.. = named outputs in the component's order.
    pub port: u8,
    pub name: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Source,
    Transform,
    Sink,
}

/// Resolves `ID` or `ID.NAME` against the config.
pub fn resolve(config: &Config, input: &str) -> Result<Output, String> {
    let (id, name) = match input.split_once('.') {
        Some((a, b)) => (a, Some(b)),
        None => (input, None),
    };
    if let Some(s) = config.sources.iter().find(|s| s.id == id) {
        return match name {
            None => Ok(Output {
                component: id.into(),
                port: 0,
                name: None,
            }),
            // A source that parses on the shards has its parser's rejects as `ID.dropped`
            // (the loader rewrites it to `ID:parse.dropped`).
            Some("dropped") if s.kind.implicit_parse().is_some() => Ok(Output {
                component: id.into(),
                port: 0,
                name: Some("dropped".into()),
            }),
            Some(n) => Err(format!("source `{id}` has no output named `{n}`")),
        };
    }
    if let Some(t) = config.transforms.iter().find(|t| t.id == id) {
        return match name {
            None => Ok(Output {
                component: id.into(),
                port: 0,
                name: None,
            }),
            Some(n) => match t.kind.named_outputs().iter().position(|o| o == n) {
                Some(p) => Ok(Output {
                    component: id.into(),
                    port: p as u8 + 1,
                    name: Some(n.into()),
                }),
                None => {
                    let known = t.kind.named_outputs();
                    Err(if known.is_empty() {
                        format!("transform `{id}` ({}) has no named outputs", t.type_name)
                    } else {
                        format!(
                            "transform `{id}` ({}) has no output named `{n}` (it has: {})",
                            t.type_name,
                            known.join(", ")
                        )
                    })
                }
            },
        };
    }
    if let Some(s) = config.sinks.iter().find(|s| s.id == id) {
        let named = sink_named_outputs(&s.type_name);
        return match name {
            // The output is its own component (a source fed by the sink's writer thread),
            // named by the whole input.
            Some(n) if named.contains(&n) => Ok(Output {
                component: input.into(),
                port: 0,
                name: Some(n.into()),
            }),
            Some(n) => {
                let with = sink_types_with_output(n);
                Err(if with.is_empty() {
                    format!("sink `{id}` ({}) has no output named `{n}`", s.type_name)
                } else {
                    format!(
                        "sink `{id}` ({}) has no output named `{n}` (sinks of type {} have it)",
                        s.type_name,
                        with.join(", ")
                    )
                })
            }
            None => Err(format!(
                "`{id}` is a sink; sinks have no outputs to read (only named ones, like `{id}.dead_letter` of an http sink)"
            )),
        };
    }
    Err(format!(
        "unknown input `{input}`: no source or transform has that ID"
    ))
}

/// The sink whose named output (`SINK.NAME`, e.g. `es.dead_letter`) `input` reads, if it
/// reads one.
fn sink_output_read<'a>(config: &Config, input: &'a str) -> Option<&'a str> {
    let (id, _) = input.split_once('.')?;
    let out = resolve(config, input).ok()?;
    (out.component == input && config.sinks.iter().any(|s| s.id == id)).then_some(id)
}

fn kp(parts: &[&str]) -> Vec<String> {
    parts.iter().map(|s| s.to_string()).collect()
}

/// Adds graph errors to `rep`.
pub fn check(config: &Config, root: &toml::Table, rep: &mut Reporter) {
    // IDs must be unique across sections.
    let mut seen: HashMap<&str, &str> = HashMap::new();
    let mut duplicated: Vec<&str> = Vec::new();
    for section in ["sources", "transforms", "sinks"] {
        if let Some(t) = root.get(section).and_then(|v| v.as_table()) {
            for id in t.keys() {
                if let Some(first) = seen.insert(id, section) {
                    duplicated.push(id);
                    rep.at(
                        &kp(&[section, id]),
                        format!(
                            "component ID `{id}` is also used in [{first}]; IDs must be unique"
                        ),
                    );
                }
            }
        }
    }
    let all_ids: Vec<&str> = seen.keys().copied().collect();
    // The inputs of every transform and sink in the file (indexed as there), also of those
    // that failed their own checks, so that all the errors of a file show at once.
    let consumers = ["transforms", "sinks"].into_iter().flat_map(|section| {
        let table = root.get(section).and_then(|v| v.as_table());
        table
            .into_iter()
            .flatten()
            .map(move |(id, c)| (section, id.as_str(), c))
    });
    for (section, id, c) in consumers {
        let inputs = c.get("inputs").and_then(|v| v.as_array());
        for (i, input) in inputs.into_iter().flatten().enumerate() {
            let Some(input) = input.as_str() else {
                continue;
            };
            if let Err(m) = resolve(config, input) {
                // A component that failed its own checks still exists: don't report twice.
                let base = input.split('.').next().unwrap_or(input);
                let exists_but_invalid = all_ids.contains(&base)
                    && !config.sources.iter().any(|s| s.id == base)
                    && !config.transforms.iter().any(|t| t.id == base)
                    && !config.sinks.iter().any(|s| s.id == base);
                if !exists_but_invalid {
                    rep.at(&kp(&[section, id, "inputs", &i.to_string()]), m);
                }
            }
            // (A sink reading itself is already "a sink"; a duplicated ID is reported above.)
            if section == "transforms"
                && input.split('.').next() == Some(id)
                && !duplicated.contains(&id)
            {
                rep.at(
                    &kp(&[section, id, "inputs", &i.to_string()]),
                    format!("`{id}` reads its own output"),
                );
            }
        }
    }
    // A sink reading its own dead letter.
    for s in &config.sinks {
        for (i, input) in s.inputs.iter().enumerate() {
            if sink_output_read(config, input) == Some(s.id.as_str())
                && !duplicated.contains(&s.id.as_str())
            {
                rep.at(
                    &kp(&["sinks", &s.id, "inputs", &i.to_string()]),
                    format!("`{}` reads its own output `{input}`", s.id),
                );
            }
        }
    }
    // Cycles among transforms, and through sinks' named outputs.
    let mut state: HashMap<&str, u8> = HashMap::new();
    let mut stack: Vec<&str> = Vec::new();
    fn visit<'a>(
        config: &'a Config,
        id: &'a str,
        state: &mut HashMap<&'a str, u8>,
        stack: &mut Vec<&'a str>,
        found: &mut Vec<Vec<&'a str>>,
    ) {
        match state.get(id) {
            Some(2) => return,
            Some(1) => {
                let start = stack.iter().position(|s| *s == id).unwrap_or(0);
                let mut cycle = stack[start..].to_vec();
                cycle.push(id);
                found.push(cycle);
                return;
            }
            _ => {}
        }
        state.insert(id, 1);
        stack.push(id);
        let inputs = match config.transforms.iter().find(|t| t.id == id) {
            Some(t) => Some(&t.inputs),
            None => config.sinks.iter().find(|s| s.id == id).map(|s| &s.inputs),
        };
        for input in inputs.into_iter().flatten() {
            let up = input.split('.').next().unwrap_or(input);
            let upstream = config.transforms.iter().any(|t| t.id == up)
                || sink_output_read(config, input).is_some();
            if up != id && upstream {
                visit(config, up, state, stack, found);
            }
        }
        stack.pop();
        state.insert(id, 2);
    }
    let mut cycles = Vec::new();
    let ids = config
        .transforms
        .iter()
        .map(|t| t.id.as_str())
        .chain(config.sinks.iter().map(|s| s.id.as_str()));
    for id in ids {
        visit(config, id, &mut state, &mut stack, &mut cycles);
    }
    for c in cycles {
        let mut shown: Vec<&str> = c.clone();
        shown.reverse();
        let section = if config.transforms.iter().any(|t| t.id == c[0]) {
            "transforms"
        } else {
            "sinks"
        };
        rep.at(
            &kp(&[section, c[0], "inputs"]),
            format!("cycle: {}", shown.join(" -> ")),
        );
    }
    if root.get("sources").is_none() {
        rep.at(&[], "no [sources.*]: a pipeline needs at least one source");
    }
    if root.get("sinks").is_none() {
        rep.at(&[], "no [sinks.*]: a pipeline needs at least one sink");
    }
}

/// Graphviz DOT of components and edges.
pub fn to_dot(config: &Config) -> String {
    let mut out =
        String::from("digraph sluice {\n  rankdir=LR;\n  node [fontname=\"Helvetica\"];\n");
    let q = |s: &str| format!("\"{}\"", s.replace('\\', "\\\\").replace('"', "\\\""));
    for s in &config.sources {
        out += &format!(
            "  {} [shape=invhouse, label={}];\n",
            q(&s.id),
            q(&format!("{}\n({})", s.id, s.type_name))
        );
    }
    for t in &config.transforms {
        out += &format!(
            "  {} [shape=box, label={}];\n",
            q(&t.id),
            q(&format!("{}\n({})", t.id, t.type_name))
        );
    }
    for s in &config.sinks {
        out += &format!(
            "  {} [shape=house, label={}];\n",
            q(&s.id),
            q(&format!("{}\n({})", s.id, s.type_name))
        );
    }
    let edges = config
        .transforms
        .iter()
        .map(|t| (&t.id, &t.inputs))
        .chain(config.sinks.iter().map(|s| (&s.id, &s.inputs)));
    for (id, inputs) in edges {
        for input in inputs {
            let (from, name) = match input.split_once('.') {
                Some((a, b)) => (a, Some(b)),
                None => (input.as_str(), None),
            };
            match name {
                Some(n) => {
                    out += &format!(
                        "  {} -> {} [label={}, style=dashed];\n",
                        q(from),
                        q(id),
                        q(n)
                    )
                }
                None => out += &format!("  {} -> {};\n", q(from), q(id)),
            }
        }
    }
    out.push_str("}\n");
    out
}

/// The role of a component ID.
pub fn role(config: &Config, id: &str) -> Option<Role> {
    if config.sources.iter().any(|s| s.id == id) {
        Some(Role::Source)
    } else if config.transforms.iter().any(|t| t.id == id) {
        Some(Role::Transform)
    } else if config.sinks.iter().any(|s| s.id == id) {
        Some(Role::Sink)
    } else {
        None
    }
}
