//! The standard workloads W1-W5 (`../shared/bench/README.md`): which input each one reads,
//! which events its sink must receive, how the input reaches Sluice (a file it tails, or a
//! sender the harness runs), and the pipeline TOML that `sluice run` is given for it.

use std::fmt::{self, Write as _};
use std::path::PathBuf;

use clap::ValueEnum;

use crate::data::Counts;

/// The sink every workload counts at: `sluice_events_in_total{component="count"}`.
pub const SINK_ID: &str = "count";

/// One of the standard workloads.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, ValueEnum)]
pub enum Workload {
    /// file → parse JSON → drop debug → add `env = "prod"` → blackhole
    #[value(name = "W1")]
    W1,
    /// file → blackhole, raw lines
    #[value(name = "W2")]
    W2,
    /// as W1, but the sink writes NDJSON to /dev/shm
    #[value(name = "W3")]
    W3,
    /// RFC 5424 over one TCP connection → parse syslog → blackhole
    #[value(name = "W4")]
    W4,
    /// HTTP NDJSON, 1,000 events per request, 4 keep-alive connections → parse JSON → blackhole
    #[value(name = "W5")]
    W5,
}

/// The generator format a workload's input file is written in.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum DataFormat {
    Json,
    Syslog,
}

impl DataFormat {
    /// The `--format` of `gen_logs.py`.
    pub fn generator_name(self) -> &'static str {
        match self {
            DataFormat::Json => "json",
            DataFormat::Syslog => "syslog",
        }
    }

    /// The data file's extension.
    pub fn extension(self) -> &'static str {
        match self {
            DataFormat::Json => "ndjson",
            DataFormat::Syslog => "syslog",
        }
    }
}

/// How the input reaches Sluice.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Delivery {
    /// Sluice tails the data file; the clock starts at spawn.
    File,
    /// The harness replays the file over one TCP connection (like `socat -b 262144`); the clock
    /// starts when the sender starts.
    TcpReplay,
    /// The harness POSTs the file as NDJSON bodies of `batch` lines over `connections`
    /// keep-alive HTTP/1.1 connections (like `send_http.py`); the clock starts when the sender
    /// starts.
    HttpPost { batch: usize, connections: usize },
}

impl Workload {
    pub const ALL: [Workload; 5] = [
        Workload::W1,
        Workload::W2,
        Workload::W3,
        Workload::W4,
        Workload::W5,
    ];

    pub fn id(self) -> &'static str {
        match self {
            Workload::W1 => "W1",
            Workload::W2 => "W2",
            Workload::W3 => "W3",
            Workload::W4 => "W4",
            Workload::W5 => "W5",
        }
    }

    pub fn data_format(self) -> DataFormat {
        match self {
            Workload::W4 => DataFormat::Syslog,
            _ => DataFormat::Json,
        }
    }

    pub fn delivery(self) -> Delivery {
        match self {
            Workload::W1 | Workload::W2 | Workload::W3 => Delivery::File,
            Workload::W4 => Delivery::TcpReplay,
            Workload::W5 => Delivery::HttpPost {
                batch: 1000,
                connections: 4,
            },
        }
    }

    pub fn description(self) -> &'static str {
        match self {
            Workload::W1 => "file → parse JSON → filter level != debug → add env → blackhole",
            Workload::W2 => "file → blackhole (raw lines)",
            Workload::W3 => {
                "file → parse JSON → filter level != debug → add env → file on /dev/shm"
            }
            Workload::W4 => "syslog RFC 5424 over one TCP connection → parse syslog → blackhole",
            Workload::W5 => {
                "HTTP POST NDJSON (1,000 per request, 4 connections) → parse JSON → blackhole"
            }
        }
    }

    /// Events the sink must count: the non-debug lines for W1/W3, every line for W2.
    pub fn expected_events(self, counts: &Counts) -> u64 {
        match self {
            Workload::W1 | Workload::W3 => counts.non_debug(),
            Workload::W2 | Workload::W4 | Workload::W5 => counts.lines,
        }
    }

    /// The file the sink writes, for workloads whose sink writes one (W3).
    pub fn output_path(self, run_id: &str) -> Option<PathBuf> {
        match self {
            Workload::W3 => Some(PathBuf::from(format!(
                "/dev/shm/sluice-perf-w3-{run_id}.ndjson"
            ))),
            _ => None,
        }
    }
}

impl fmt::Display for Workload {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(self.id())
    }
}

/// What varies between runs of a pipeline.
#[derive(Clone, Debug)]
pub struct PipelineParams {
    /// `engine.shards`.
    pub shards: u32,
    /// `engine.data_dir`: a fresh directory per run, so no checkpoint carries over.
    pub data_dir: String,
    /// Port of the API (`/metrics`) on 127.0.0.1.
    pub port: u16,
    /// The input file (file workloads).
    pub input: String,
    /// Port on 127.0.0.1 the network source listens on (W4, W5).
    pub source_port: u16,
    /// Unique id of this run, used in output file names.
    pub run_id: String,
    /// A disk buffer (`sync = "batch"`) in front of a file sink.
    pub disk_buffer: bool,
}

/// The pipeline TOML for `workload`.
pub fn pipeline_toml(workload: Workload, p: &PipelineParams) -> String {
    let mut t = String::new();
    // Writing to a String cannot fail.
    let _ = write!(
        t,
        "# {id}: {desc}\n\
         [engine]\n\
         shards = {shards}\n\
         cores = \"auto\"\n\
         data_dir = {data_dir}\n\
         \n\
         [api]\n\
         address = \"127.0.0.1:{port}\"\n\
         \n",
        id = workload.id(),
        desc = workload.description(),
        shards = p.shards,
        data_dir = toml_str(&p.data_dir),
        port = p.port,
    );
    match workload.delivery() {
        Delivery::File => {
            let _ = write!(
                t,
                "[sources.in]\n\
                 type = \"file\"\n\
                 include = [{input}]\n\
                 read_from = \"beginning\"\n",
                input = toml_str(&p.input),
            );
        }
        Delivery::TcpReplay => {
            let _ = write!(
                t,
                "[sources.in]\n\
                 type = \"syslog\"\n\
                 mode = \"tcp\"\n\
                 address = \"127.0.0.1:{}\"\n\
                 format = \"rfc5424\"\n",
                p.source_port
            );
        }
        Delivery::HttpPost { .. } => {
            let _ = write!(
                t,
                "[sources.in]\n\
                 type = \"http\"\n\
                 address = \"127.0.0.1:{}\"\n",
                p.source_port
            );
        }
    }
    let sink_input = match workload {
        // The syslog source parses on the shards by itself (an implicit `in:parse`).
        Workload::W2 | Workload::W4 => "in",
        Workload::W5 => {
            t.push_str(
                "\n\
                 [transforms.parse]\n\
                 type = \"parse\"\n\
                 inputs = [\"in\"]\n\
                 format = \"json\"\n",
            );
            "parse"
        }
        Workload::W1 | Workload::W3 => {
            t.push_str(
                "\n\
                 [transforms.parse]\n\
                 type = \"parse\"\n\
                 inputs = [\"in\"]\n\
                 format = \"json\"\n\
                 \n\
                 [transforms.keep]\n\
                 type = \"filter\"\n\
                 inputs = [\"parse\"]\n\
                 condition = 'level != \"debug\"'\n\
                 \n\
                 [transforms.env]\n\
                 type = \"fields\"\n\
                 inputs = [\"keep\"]\n\
                 add = { env = \"prod\" }\n",
            );
            "env"
        }
    };
    let output = workload.output_path(&p.run_id);
    let sink_type = if output.is_some() {
        "file"
    } else {
        "blackhole"
    };
    let _ = write!(
        t,
        "\n[sinks.{SINK_ID}]\ntype = \"{sink_type}\"\ninputs = [{}]\n",
        toml_str(sink_input)
    );
    if let Some(path) = output {
        let _ = write!(
            t,
            "path = {}\nencoding = \"ndjson\"\n",
            toml_str(&path.to_string_lossy())
        );
        if p.disk_buffer {
            t.push_str("buffer = { type = \"disk\", sync = \"batch\" }\n");
        }
    }
    t
}

/// A TOML basic string holding `s`.
fn toml_str(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if c < ' ' || c == '\u{7f}' => {
                let _ = write!(out, "\\u{:04X}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use toml::Value;

    fn params() -> PipelineParams {
        PipelineParams {
            shards: 2,
            data_dir: "/tmp/sluice-perf-x/data".into(),
            port: 18686,
            input: "/tmp/bench-data/events-2m.ndjson".into(),
            source_port: 19514,
            run_id: "123-1".into(),
            disk_buffer: false,
        }
    }

    fn parse(w: Workload) -> Value {
        let text = pipeline_toml(w, &params());
        text.parse::<Value>()
            .unwrap_or_else(|e| panic!("{w} TOML does not parse: {e}\n{text}"))
    }

    fn keys(v: &Value, table: &str) -> Vec<String> {
        match v.get(table) {
            Some(Value::Table(t)) => t.keys().cloned().collect(),
            _ => Vec::new(),
        }
    }

    fn inputs(v: &Value, table: &str, id: &str) -> Vec<String> {
        v[table][id]["inputs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|i| i.as_str().unwrap().to_string())
            .collect()
    }

    fn check_engine(v: &Value) {
        assert_eq!(v["engine"]["shards"].as_integer(), Some(2));
        assert_eq!(v["api"]["address"].as_str(), Some("127.0.0.1:18686"));
        assert_eq!(keys(v, "sources"), vec!["in"]);
        assert_eq!(keys(v, "sinks"), vec![SINK_ID]);
        assert_eq!(v["sinks"][SINK_ID]["type"].as_str(), Some("blackhole"));
    }

    fn check_common(v: &Value) {
        assert_eq!(v["engine"]["shards"].as_integer(), Some(2));
        assert_eq!(v["engine"]["cores"].as_str(), Some("auto"));
        assert_eq!(
            v["engine"]["data_dir"].as_str(),
            Some("/tmp/sluice-perf-x/data")
        );
        assert_eq!(v["api"]["address"].as_str(), Some("127.0.0.1:18686"));
        let src = &v["sources"]["in"];
        assert_eq!(src["type"].as_str(), Some("file"));
        assert_eq!(
            src["include"].as_array().unwrap(),
            &vec![Value::String("/tmp/bench-data/events-2m.ndjson".into())]
        );
        assert_eq!(src["read_from"].as_str(), Some("beginning"));
        assert_eq!(keys(v, "sources"), vec!["in"]);
        assert_eq!(keys(v, "sinks"), vec![SINK_ID]);
    }

    fn check_w1_transforms(v: &Value) {
        assert_eq!(keys(v, "transforms"), vec!["env", "keep", "parse"]);
        let t = &v["transforms"];
        assert_eq!(t["parse"]["type"].as_str(), Some("parse"));
        assert_eq!(t["parse"]["format"].as_str(), Some("json"));
        assert_eq!(inputs(v, "transforms", "parse"), vec!["in"]);
        assert_eq!(t["keep"]["type"].as_str(), Some("filter"));
        assert_eq!(t["keep"]["condition"].as_str(), Some(r#"level != "debug""#));
        assert_eq!(inputs(v, "transforms", "keep"), vec!["parse"]);
        assert_eq!(t["env"]["type"].as_str(), Some("fields"));
        assert_eq!(t["env"]["add"]["env"].as_str(), Some("prod"));
        assert_eq!(inputs(v, "transforms", "env"), vec!["keep"]);
        assert_eq!(inputs(v, "sinks", SINK_ID), vec!["env"]);
    }

    #[test]
    fn w1_pipeline() {
        let v = parse(Workload::W1);
        check_common(&v);
        check_w1_transforms(&v);
        let sink = &v["sinks"][SINK_ID];
        assert_eq!(sink["type"].as_str(), Some("blackhole"));
        assert_eq!(sink.as_table().unwrap().len(), 2, "{sink:?}");
    }

    #[test]
    fn w2_pipeline() {
        let v = parse(Workload::W2);
        check_common(&v);
        assert!(v.get("transforms").is_none());
        assert_eq!(v["sinks"][SINK_ID]["type"].as_str(), Some("blackhole"));
        assert_eq!(inputs(&v, "sinks", SINK_ID), vec!["in"]);
    }

    #[test]
    fn w3_pipeline() {
        let v = parse(Workload::W3);
        check_common(&v);
        check_w1_transforms(&v);
        let sink = &v["sinks"][SINK_ID];
        assert_eq!(sink["type"].as_str(), Some("file"));
        assert_eq!(
            sink["path"].as_str(),
            Some("/dev/shm/sluice-perf-w3-123-1.ndjson")
        );
        assert_eq!(sink["encoding"].as_str(), Some("ndjson"));
    }

    #[test]
    fn w3_with_a_disk_buffer() {
        let mut p = params();
        p.disk_buffer = true;
        let v: Value = pipeline_toml(Workload::W3, &p).parse().unwrap();
        let buffer = &v["sinks"][SINK_ID]["buffer"];
        assert_eq!(buffer["type"].as_str(), Some("disk"));
        assert_eq!(buffer["sync"].as_str(), Some("batch"));
        // Blackhole sinks have no buffer option.
        let v: Value = pipeline_toml(Workload::W1, &p).parse().unwrap();
        assert!(v["sinks"][SINK_ID].get("buffer").is_none());
    }

    #[test]
    fn w4_pipeline() {
        let v = parse(Workload::W4);
        check_engine(&v);
        let src = &v["sources"]["in"];
        assert_eq!(src["type"].as_str(), Some("syslog"));
        assert_eq!(src["mode"].as_str(), Some("tcp"));
        assert_eq!(src["address"].as_str(), Some("127.0.0.1:19514"));
        assert_eq!(src["format"].as_str(), Some("rfc5424"));
        assert!(v.get("transforms").is_none());
        assert_eq!(inputs(&v, "sinks", SINK_ID), vec!["in"]);
        assert_eq!(Workload::W4.data_format(), DataFormat::Syslog);
        assert_eq!(Workload::W4.delivery(), Delivery::TcpReplay);
    }

    #[test]
    fn w5_pipeline() {
        let v = parse(Workload::W5);
        check_engine(&v);
        let src = &v["sources"]["in"];
        assert_eq!(src["type"].as_str(), Some("http"));
        assert_eq!(src["address"].as_str(), Some("127.0.0.1:19514"));
        assert_eq!(keys(&v, "transforms"), vec!["parse"]);
        assert_eq!(v["transforms"]["parse"]["format"].as_str(), Some("json"));
        assert_eq!(inputs(&v, "transforms", "parse"), vec!["in"]);
        assert_eq!(inputs(&v, "sinks", SINK_ID), vec!["parse"]);
        assert_eq!(
            Workload::W5.delivery(),
            Delivery::HttpPost {
                batch: 1000,
                connections: 4
            }
        );
    }

    #[test]
    fn odd_paths_are_escaped() {
        let mut p = params();
        p.input = "/tmp/we\"ird\\dir/\tx.ndjson".into();
        let v: Value = pipeline_toml(Workload::W2, &p).parse().unwrap();
        assert_eq!(
            v["sources"]["in"]["include"][0].as_str(),
            Some(p.input.as_str())
        );
    }

    #[test]
    fn expected_events() {
        let c = Counts {
            lines: 2_000_000,
            debug_lines: 800_846,
        };
        assert_eq!(Workload::W1.expected_events(&c), 1_199_154);
        assert_eq!(Workload::W2.expected_events(&c), 2_000_000);
        assert_eq!(Workload::W3.expected_events(&c), 1_199_154);
        assert_eq!(Workload::W4.expected_events(&c), 2_000_000);
        assert_eq!(Workload::W5.expected_events(&c), 2_000_000);
    }
}
