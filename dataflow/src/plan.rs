//! The planner: turns a checked config into the placement `sluice run` executes and
//! `sluice plan` prints.
//!
//! Every shard runs the same copy of the graph. Transforms and shard-side sinks are fused:
//! on a shard they are plain function calls on a batch, in topological order. A ring is
//! placed only where data changes thread: from a connector-thread source into each shard,
//! between shards when a shard-owned source spreads its batches, and from each shard into
//! a sink's writer thread.
//!
//! A sink's dead-letter output (`ID.dead_letter`) that something reads is planned as a
//! source of its own, after the configured ones: its producer is the sink's writer thread,
//! which deals batches to every shard through rings like a connector-thread source.

use crate::config::{Config, Cores, Shards, SinkKind, SourceKind, DEAD_LETTER};
use crate::graph::{resolve, Role};
use std::collections::HashMap;
use std::fmt::Write as _;

/// How a source runs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Placement {
    /// A part on every shard; `spread` deals its batches over all shards.
    Shards { spread: bool },
    /// A connector thread feeding every shard.
    Thread,
    /// The dead-letter output of sink `sink`: its writer thread feeds every shard.
    DeadLetter { sink: String },
}

#[derive(Debug, Clone)]
pub struct SourcePlan {
    pub id: String,
    pub type_name: String,
    pub placement: Placement,
}

#[derive(Debug, Clone)]
pub struct NodePlan {
    pub id: String,
    pub type_name: String,
    pub role: Role,
    /// For each port, the nodes that read it.
    pub outputs: Vec<Vec<u16>>,
    /// Sinks only: has a writer thread.
    pub writer_thread: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RingPlan {
    pub from: String,
    pub to: String,
    pub count: usize,
    pub capacity: usize,
}

/// A run of components called one after the other on a shard.
#[derive(Debug, Clone)]
pub struct Chain {
    /// What feeds the first component (sources, `ID` or `ID.NAME` outputs).
    pub inputs: Vec<String>,
    pub nodes: Vec<String>,
}

#[derive(Debug, Clone)]
pub struct Plan {
    pub shards: usize,
    /// Core of each shard (`None`: unpinned).
    pub cores: Vec<Option<usize>>,
    pub batch_size: usize,
    pub sources: Vec<SourcePlan>,
    /// Transforms (topological order), then sinks.
    pub nodes: Vec<NodePlan>,
    /// For each source, the nodes that read it.
    pub source_outputs: Vec<Vec<u16>>,
    /// Runs of components fused into one call chain, for display.
    pub chains: Vec<Chain>,
    pub rings: Vec<RingPlan>,
    pub threads: Vec<(String, String)>,
    /// Shard-to-shard rings exist (some source spreads).
    pub mesh: bool,
    /// Keyed exchange rings exist (some transform keeps state by key).
    pub exchange: bool,
}

/// Sink writer rings hold this many encoded batches per shard.
pub const WRITER_RING: usize = 8;

/// Resolves `engine.shards` and `engine.cores` on this machine.
pub fn placement(config: &Config, online: &[usize]) -> Result<Vec<Option<usize>>, String> {
    let cores: Vec<usize> =
        match &config.engine.cores {
            Cores::Auto => online.to_vec(),
            Cores::List(l) => {
                for c in l {
                    if !online.contains(c) {
                        return Err(format!(
                        "engine.cores: core {c} is not available on this machine (available: {})",
                        online.iter().map(|c| c.to_string()).collect::<Vec<_>>().join(", ")
                    ));
                    }
                }
                l.clone()
            }
        };
    let shards = match config.engine.shards {
        Shards::Auto => cores.len().max(1),
        Shards::Count(n) => n,
    };
    if cores.is_empty() {
        return Ok(vec![None; shards]);
    }
    Ok((0..shards).map(|i| Some(cores[i % cores.len()])).collect())
}

pub fn build(config: &Config, cores: Vec<Option<usize>>) -> Plan {
    let shards = cores.len();
    let mut sources: Vec<SourcePlan> = config
        .sources
        .iter()
        .map(|s| SourcePlan {
            id: s.id.clone(),
            type_name: s.type_name.clone(),
            placement: match &s.kind {
                SourceKind::Stdin(_) | SourceKind::Syslog(_) | SourceKind::Http(_) => {
                    Placement::Thread
                }
                SourceKind::Generator(_) => Placement::Shards { spread: false },
                SourceKind::File(f) => Placement::Shards {
                    spread: f.spread && shards > 1,
                },
            },
        })
        .collect();
    sources.extend(dead_letter_sources(config));
    // Topological order of transforms (Kahn); the config is known to be acyclic.
    let mut order: Vec<usize> = Vec::new();
    let mut placed: Vec<bool> = vec![false; config.transforms.len()];
    while order.len() < config.transforms.len() {
        let before = order.len();
        for (i, t) in config.transforms.iter().enumerate() {
            if placed[i] {
                continue;
            }
            let ready = t.inputs.iter().all(|inp| {
                let up = inp.split('.').next().unwrap_or(inp);
                match config.transforms.iter().position(|x| x.id == up) {
                    Some(j) => placed[j],
                    None => true,
                }
            });
            if ready {
                placed[i] = true;
                order.push(i);
            }
        }
        if order.len() == before {
            break; // cycle: validation reports it
        }
    }
    let mut nodes: Vec<NodePlan> = order
        .iter()
        .map(|&i| {
            let t = &config.transforms[i];
            NodePlan {
                id: t.id.clone(),
                type_name: t.type_name.clone(),
                role: Role::Transform,
                outputs: vec![Vec::new(); 1 + t.kind.named_outputs().len()],
                writer_thread: false,
            }
        })
        .collect();
    nodes.extend(config.sinks.iter().map(|s| NodePlan {
        id: s.id.clone(),
        type_name: s.type_name.clone(),
        role: Role::Sink,
        outputs: Vec::new(),
        writer_thread: s.kind.has_writer_thread(),
    }));
    let index: HashMap<String, u16> = nodes
        .iter()
        .enumerate()
        .map(|(i, n)| (n.id.clone(), i as u16))
        .collect();
    let mut source_outputs = vec![Vec::new(); sources.len()];
    let consumers = config
        .transforms
        .iter()
        .map(|t| (&t.id, &t.inputs))
        .chain(config.sinks.iter().map(|s| (&s.id, &s.inputs)));
    for (id, inputs) in consumers {
        let me = index[id];
        for input in inputs {
            let Ok(out) = resolve(config, input) else {
                continue;
            };
            if let Some(si) = sources.iter().position(|s| s.id == out.component) {
                source_outputs[si].push(me);
            } else if let Some(&ni) = index.get(&out.component) {
                let ports = &mut nodes[ni as usize].outputs;
                if let Some(p) = ports.get_mut(out.port as usize) {
                    p.push(me);
                }
            }
        }
    }
    // Fused chains for display: follow main outputs into nodes that read nothing else.
    let mut upstreams: HashMap<u16, Vec<String>> = HashMap::new();
    for (si, outs) in source_outputs.iter().enumerate() {
        for o in outs {
            upstreams
                .entry(*o)
                .or_default()
                .push(sources[si].id.clone());
        }
    }
    for n in &nodes {
        for (port, outs) in n.outputs.iter().enumerate() {
            let name = match port {
                0 => n.id.clone(),
                p => {
                    let t = config
                        .transforms
                        .iter()
                        .find(|t| t.id == n.id)
                        .expect("transform");
                    format!("{}.{}", n.id, t.kind.named_outputs()[p - 1].as_str())
                }
            };
            for o in outs {
                upstreams.entry(*o).or_default().push(name.clone());
            }
        }
    }
    let mut chains = Vec::new();
    let mut covered = vec![false; nodes.len()];
    for start in 0..nodes.len() {
        if covered[start] {
            continue;
        }
        let mut chain = Chain {
            inputs: upstreams.get(&(start as u16)).cloned().unwrap_or_default(),
            nodes: vec![nodes[start].id.clone()],
        };
        covered[start] = true;
        let mut cur = start;
        while let Some(&next) = nodes[cur].outputs.first().and_then(|main| {
            main.iter()
                .find(|c| !covered[**c as usize] && upstreams.get(c).is_some_and(|u| u.len() == 1))
        }) {
            cur = next as usize;
            covered[cur] = true;
            chain.nodes.push(nodes[cur].id.clone());
        }
        chains.push(chain);
    }
    let ring_capacity = config.engine.ring_capacity;
    let mut rings = Vec::new();
    let mut threads = Vec::new();
    for s in &sources {
        if s.placement == Placement::Thread {
            threads.push((
                format!("{} reader", s.id),
                format!(
                    "{} source: reads input, frames lines, deals batches to the shards",
                    s.type_name
                ),
            ));
            rings.push(RingPlan {
                from: format!("{} reader thread", s.id),
                to: "each shard".into(),
                count: shards,
                capacity: ring_capacity,
            });
        }
    }
    for s in &sources {
        if let Placement::DeadLetter { sink } = &s.placement {
            rings.push(RingPlan {
                from: format!("{sink} writer thread ({})", s.id),
                to: "each shard".into(),
                count: shards,
                capacity: ring_capacity,
            });
        }
    }
    let mesh = shards > 1
        && sources
            .iter()
            .any(|s| s.placement == (Placement::Shards { spread: true }));
    if mesh {
        rings.push(RingPlan {
            from: "each shard".into(),
            to: "each other shard (spread)".into(),
            count: shards * (shards - 1),
            capacity: ring_capacity,
        });
    }
    let keyed: Vec<&str> = config
        .transforms
        .iter()
        .filter(|t| t.kind.is_keyed())
        .map(|t| t.id.as_str())
        .collect();
    let exchange = shards > 1 && !keyed.is_empty();
    if exchange {
        rings.push(RingPlan {
            from: "each shard".into(),
            to: format!(
                "each other shard (keyed exchange before {})",
                keyed.join(", ")
            ),
            count: shards * (shards - 1),
            capacity: ring_capacity,
        });
    }
    for s in config.sinks.iter().filter(|s| s.kind.has_writer_thread()) {
        let what = match &s.kind {
            SinkKind::File(f) => format!("file sink: writes {}", f.path),
            SinkKind::Console(c) => match c.stream {
                sluice_connectors::sinks::console::Stream::Stdout => {
                    "console sink: writes standard output".into()
                }
                sluice_connectors::sinks::console::Stream::Stderr => {
                    "console sink: writes standard error".into()
                }
            },
            SinkKind::Http(h) => format!("http sink: posts batches to {}", h.uri),
            SinkKind::Blackhole(_) => unreachable!(),
        };
        threads.push((format!("{} writer", s.id), what));
        rings.push(RingPlan {
            from: "each shard".into(),
            to: format!("{} writer thread", s.id),
            count: shards,
            capacity: WRITER_RING,
        });
    }
    if let Some(api) = &config.api {
        threads.push((
            "api".into(),
            format!("HTTP API on {}: /health /ready /metrics", api.address),
        ));
    }
    Plan {
        shards,
        cores,
        batch_size: config.engine.batch_size,
        sources,
        nodes,
        source_outputs,
        chains,
        rings,
        threads,
        mesh,
        exchange,
    }
}

/// The dead-letter outputs something reads, as sources (`ID.dead_letter`, type
/// `dead_letter`), in sink order.
pub fn dead_letter_sources(config: &Config) -> Vec<SourcePlan> {
    let consumed = |name: &str| {
        config
            .transforms
            .iter()
            .flat_map(|t| &t.inputs)
            .chain(config.sinks.iter().flat_map(|s| &s.inputs))
            .any(|i| i == name)
    };
    config
        .sinks
        .iter()
        .filter(|s| crate::config::sink_named_outputs(&s.type_name).contains(&DEAD_LETTER))
        .map(|s| (format!("{}.{DEAD_LETTER}", s.id), s))
        .filter(|(id, _)| consumed(id))
        .map(|(id, s)| SourcePlan {
            id,
            type_name: DEAD_LETTER.into(),
            placement: Placement::DeadLetter { sink: s.id.clone() },
        })
        .collect()
}

impl Plan {
    /// Human-readable placement, as `sluice plan` prints it.
    pub fn render(&self) -> String {
        let mut o = String::new();
        let core_list: Vec<String> = self
            .cores
            .iter()
            .map(|c| c.map_or("unpinned".into(), |c| c.to_string()))
            .collect();
        let _ = writeln!(
            o,
            "{} shard(s), pinned to core(s) {}; batches of up to {} events\n",
            self.shards,
            core_list.join(", "),
            self.batch_size
        );
        for (i, core) in self.cores.iter().enumerate() {
            let _ = writeln!(
                o,
                "shard {i} (core {}):",
                core.map_or("unpinned".into(), |c| c.to_string())
            );
            for s in &self.sources {
                match s.placement {
                    Placement::Shards { spread } => {
                        let how = if spread {
                            "its part of the input; batches dealt round robin over all shards"
                        } else {
                            "its part of the input; batches stay on this shard"
                        };
                        let _ = writeln!(o, "  source  {} ({}): {how}", s.id, s.type_name);
                    }
                    Placement::Thread => {
                        let _ = writeln!(
                            o,
                            "  inbound {} ({}) from its reader thread",
                            s.id, s.type_name
                        );
                    }
                    Placement::DeadLetter { ref sink } => {
                        let _ = writeln!(
                            o,
                            "  inbound {} ({}) from the {sink} writer thread: events {sink} failed to deliver",
                            s.id, s.type_name
                        );
                    }
                }
            }
            if self.mesh {
                let _ = writeln!(o, "  inbound spread batches from the other shards");
            }
            for chain in &self.chains {
                let shown: Vec<String> = chain
                    .nodes
                    .iter()
                    .map(|id| {
                        let n = self.nodes.iter().find(|n| &n.id == id).expect("node");
                        let what = match (n.role, n.writer_thread) {
                            (Role::Sink, true) => {
                                format!("{}({}: encode → ring)", n.id, n.type_name)
                            }
                            _ => format!("{}({})", n.id, n.type_name),
                        };
                        what
                    })
                    .collect();
                let _ = writeln!(
                    o,
                    "  fused   [{}] → {}",
                    chain.inputs.join(", "),
                    shown.join(" → ")
                );
            }
            o.push('\n');
        }
        if !self.threads.is_empty() {
            let _ = writeln!(o, "connector threads:");
            for (name, what) in &self.threads {
                let _ = writeln!(o, "  {name:<20} {what}");
            }
            o.push('\n');
        }
        let _ = writeln!(o, "rings (bounded SPSC, capacity in batches):");
        if self.rings.is_empty() {
            let _ = writeln!(o, "  none: every component runs fused on the shards");
        }
        for r in &self.rings {
            let _ = writeln!(
                o,
                "  {} → {}: {} ring(s) × {}",
                r.from, r.to, r.count, r.capacity
            );
        }
        o
    }
}
