//! `sluice validate` on broken configs: every kind of config error exits 1 and names the file,
//! the exact line, the key path and what is wrong. Drives the real binary.

use std::path::{Path, PathBuf};
use std::process::Command;

/// A minimal valid source and sink, for configs that only need something around the error.
const GEN: &str = "[sources.gen]\ntype = \"generator\"\ncount = 10\n";
const OUT: &str = "[sinks.out]\ntype = \"blackhole\"\ninputs = [\"gen\"]\n";

/// The binary, with no `SLUICE_*` variable from the test's own environment.
fn sluice() -> Command {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_sluice"));
    for (name, _) in std::env::vars_os() {
        if name.to_string_lossy().starts_with("SLUICE_") {
            cmd.env_remove(name);
        }
    }
    cmd
}

/// Writes `files` (name, text) to a fresh temp dir and runs `sluice validate` on them, in
/// order, with `env` added to the child's environment. Returns (exit code, stdout, stderr)
/// and the paths as given to the binary.
fn run_validate(
    files: &[(&str, &str)],
    env: &[(&str, &str)],
) -> (i32, String, String, Vec<PathBuf>) {
    let dir = tempfile::tempdir().expect("temp dir");
    let paths: Vec<PathBuf> = files
        .iter()
        .map(|(name, text)| {
            let p = dir.path().join(name);
            std::fs::write(&p, text).expect("write config");
            p
        })
        .collect();
    let out = sluice()
        .arg("validate")
        .args(&paths)
        .envs(env.iter().copied())
        .output()
        .expect("run sluice");
    (
        out.status.code().expect("exit code"),
        String::from_utf8_lossy(&out.stdout).into_owned(),
        String::from_utf8_lossy(&out.stderr).into_owned(),
        paths,
    )
}

/// `run_validate` without the paths (they are `dir/NAME` in the order given).
fn validate(files: &[(&str, &str)], env: &[(&str, &str)]) -> (i32, String, String) {
    let (code, stdout, stderr, _) = run_validate(files, env);
    (code, stdout, stderr)
}

/// One `error: FILE:LINE[:COL]: [`KEY`: ]MESSAGE` line of stderr.
#[derive(Debug, Clone, PartialEq)]
struct Diag {
    line: usize,
    column: Option<usize>,
    key: Option<String>,
    message: String,
}

/// The errors reported for `path`, in the order printed. Panics on an error line for `path`
/// that has no line number (every error in these tests must have one).
fn errors(stderr: &str, path: &Path) -> Vec<Diag> {
    let prefix = format!("error: {}:", path.display());
    stderr
        .lines()
        .filter_map(|l| l.strip_prefix(&prefix))
        .map(|rest| {
            let (loc, msg) = rest
                .split_once(": ")
                .unwrap_or_else(|| panic!("no `: ` after the position in {rest:?}"));
            let mut nums = loc.split(':').map(|n| {
                n.parse::<usize>()
                    .unwrap_or_else(|_| panic!("bad position {loc:?} in {rest:?}"))
            });
            let line = nums.next().expect("line");
            let column = nums.next();
            let (key, message) = match msg.strip_prefix('`').and_then(|m| m.split_once("`: ")) {
                Some((k, m)) => (Some(k.to_string()), m.to_string()),
                None => (None, msg.to_string()),
            };
            Diag {
                line,
                column,
                key,
                message,
            }
        })
        .collect()
}

/// Asserts `d` is at `line`, for `key`, with a message containing every fragment.
#[track_caller]
fn check(d: &Diag, line: usize, key: Option<&str>, fragments: &[&str]) {
    assert_eq!(d.line, line, "line of {d:?}");
    assert_eq!(d.key.as_deref(), key, "key of {d:?}");
    for f in fragments {
        assert!(d.message.contains(f), "{d:?} should say {f:?}");
    }
}

/// Validates one file `x.toml` that must fail; returns its errors (at least one), having
/// checked the exit code and that stderr names the file.
#[track_caller]
fn one_bad_file(text: &str, env: &[(&str, &str)]) -> Vec<Diag> {
    let (code, stdout, stderr, paths) = run_validate(&[("x.toml", text)], env);
    assert_eq!(code, 1, "exit code; stderr:\n{stderr}");
    assert!(stdout.is_empty(), "stdout: {stdout}");
    let errs = errors(&stderr, &paths[0]);
    assert!(
        !errs.is_empty(),
        "no error names {}:\n{stderr}",
        paths[0].display()
    );
    // Nothing but error lines and the summary.
    for l in stderr.lines() {
        assert!(
            l.starts_with(&format!("error: {}:", paths[0].display()))
                || l == "1 of 1 file(s) have errors",
            "unexpected stderr line {l:?}"
        );
    }
    errs
}

/// Validates one file that must pass.
#[track_caller]
fn one_good_file(text: &str, env: &[(&str, &str)]) {
    let (code, stdout, stderr, paths) = run_validate(&[("x.toml", text)], env);
    assert_eq!(code, 0, "exit code; stderr:\n{stderr}");
    assert!(stderr.is_empty(), "stderr: {stderr}");
    assert!(
        stdout.starts_with(&format!("ok: {} (", paths[0].display())),
        "stdout: {stdout}"
    );
}

#[test]
fn helpers_accept_a_minimal_valid_config() {
    one_good_file(&format!("{GEN}\n{OUT}"), &[]);
    let (code, stdout, _) = validate(&[("a.toml", &format!("{GEN}\n{OUT}"))], &[]);
    assert_eq!(code, 0);
    assert!(
        stdout.contains("(1 sources, 0 transforms, 1 sinks)"),
        "{stdout}"
    );
}

// 1
#[test]
fn unknown_key_in_a_component() {
    let text = format!(
        "{GEN}
[transforms.p]
type = \"parse\"
inputs = [\"gen\"]
format = \"json\"
nope = 1

[sinks.out]
type = \"file\"
inputs = [\"p\"]
path = \"/tmp/out.ndjson\"
encodng = \"text\"
"
    );
    let e = one_bad_file(&text, &[]);
    assert_eq!(e.len(), 2, "{e:#?}");
    check(
        &e[0],
        9,
        Some("transforms.p.nope"),
        &[
            "unknown field `nope`",
            "expected one of `format`, `on_error`",
        ],
    );
    assert_eq!(e[0].column, Some(1));
    check(
        &e[1],
        15,
        Some("sinks.out.encodng"),
        &["unknown field `encodng`", "`encoding`"],
    );
}

// 2
#[test]
fn unknown_key_in_engine() {
    let text = format!("[engine]\nshards = 1\nbogus = true\n\n{GEN}\n{OUT}");
    let e = one_bad_file(&text, &[]);
    assert_eq!(e.len(), 1, "{e:#?}");
    check(
        &e[0],
        3,
        Some("engine.bogus"),
        &["unknown field `bogus`", "`shards`", "`batch_size`"],
    );
}

// 3
#[test]
fn unknown_top_level_section() {
    let text = format!("{GEN}\n{OUT}\n[sauces.x]\ntype = \"a\"\n");
    let e = one_bad_file(&text, &[]);
    assert_eq!(e.len(), 1, "{e:#?}");
    check(
        &e[0],
        9,
        Some("sauces"),
        &[
            "unknown section `sauces`",
            "engine, api, sources, transforms or sinks",
        ],
    );
}

// 4
#[test]
fn unknown_type_lists_the_known_ones() {
    let text = format!(
        "{GEN}
[transforms.p]
type = \"jsonify\"
inputs = [\"gen\"]

[sinks.out]
type = \"kafka\"
inputs = [\"p\"]
"
    );
    let e = one_bad_file(&text, &[]);
    // The sink reading the broken transform is not blamed for it.
    assert_eq!(e.len(), 2, "{e:#?}");
    check(
        &e[0],
        6,
        Some("transforms.p.type"),
        &[
            "unknown transform type `jsonify`",
            "known: aggregate, dedupe, enrich, fields, filter, log_to_metric, parse, redact, route, sample, throttle",
        ],
    );
    check(
        &e[1],
        10,
        Some("sinks.out.type"),
        &[
            "unknown sink type `kafka`",
            "known: blackhole, console, file, http",
        ],
    );
}

// 5
#[test]
fn missing_type() {
    let text = format!("{GEN}\n[transforms.p]\ninputs = [\"gen\"]\nformat = \"json\"\n\n{OUT}");
    let e = one_bad_file(&text, &[]);
    assert_eq!(e.len(), 1, "{e:#?}");
    check(
        &e[0],
        5,
        Some("transforms.p"),
        &["missing `type`", "one of: aggregate, dedupe, enrich, fields, filter, log_to_metric, parse, redact, route, sample, throttle"],
    );
}

// 6
#[test]
fn input_naming_a_component_that_does_not_exist() {
    let text = format!(
        "{GEN}
[sinks.out]
type = \"blackhole\"
inputs = [
  \"gen\",
  \"nothere\",
]
"
    );
    let e = one_bad_file(&text, &[]);
    assert_eq!(e.len(), 1, "{e:#?}");
    // The line of the bad element, not of `inputs`.
    check(
        &e[0],
        9,
        Some("sinks.out.inputs.1"),
        &[
            "unknown input `nothere`",
            "no source or transform has that ID",
        ],
    );
}

// 7
#[test]
fn input_naming_a_named_output() {
    let text = format!(
        "{GEN}
[transforms.parse]
type = \"parse\"
inputs = [\"gen\"]
format = \"json\"

[sinks.out]
type = \"blackhole\"
inputs = [\"parse.nope\"]

[sinks.bad]
type = \"blackhole\"
inputs = [\"parse.dropped\"]
"
    );
    let e = one_bad_file(&text, &[]);
    // `parse.dropped` is fine; only `parse.nope` is an error.
    assert_eq!(e.len(), 1, "{e:#?}");
    check(
        &e[0],
        12,
        Some("sinks.out.inputs.0"),
        &["no output named `nope`", "it has: dropped"],
    );
    one_good_file(&text.replace("parse.nope", "parse"), &[]);
}

// 8
#[test]
fn input_naming_a_sink() {
    let text = format!("{GEN}\n{OUT}\n[sinks.out2]\ntype = \"blackhole\"\ninputs = [\"out\"]\n");
    let e = one_bad_file(&text, &[]);
    assert_eq!(e.len(), 1, "{e:#?}");
    check(
        &e[0],
        11,
        Some("sinks.out2.inputs.0"),
        &["`out` is a sink", "no outputs"],
    );
}

// 9
#[test]
fn cycle_between_transforms() {
    let text = format!(
        "{GEN}
[transforms.a]
type = \"parse\"
inputs = [\"gen\", \"c\"]
format = \"json\"

[transforms.b]
type = \"filter\"
inputs = [\"a\"]
condition = 'level == \"error\"'

[transforms.c]
type = \"fields\"
inputs = [\"b\"]
remove = [\"x\"]

[sinks.out]
type = \"blackhole\"
inputs = [\"c\"]
"
    );
    let e = one_bad_file(&text, &[]);
    assert_eq!(e.len(), 1, "{e:#?}");
    check(
        &e[0],
        7,
        Some("transforms.a.inputs"),
        &["cycle: a -> b -> c -> a"],
    );

    // A transform reading itself.
    let text = format!(
        "{GEN}\n[transforms.t]\ntype = \"parse\"\ninputs = [\"gen\", \"t\"]\nformat = \"json\"\n\n[sinks.out]\ntype = \"blackhole\"\ninputs = [\"t\"]\n"
    );
    let e = one_bad_file(&text, &[]);
    assert_eq!(e.len(), 1, "{e:#?}");
    check(
        &e[0],
        7,
        Some("transforms.t.inputs.1"),
        &["`t` reads its own output"],
    );
}

// 10
#[test]
fn transform_and_sink_without_inputs() {
    let text = format!(
        "{GEN}
[transforms.p]
type = \"parse\"
format = \"json\"

[sinks.out]
type = \"blackhole\"

[sinks.out2]
type = \"blackhole\"
inputs = []
"
    );
    let e = one_bad_file(&text, &[]);
    assert_eq!(e.len(), 3, "{e:#?}");
    check(
        &e[0],
        5,
        Some("transforms.p"),
        &[
            "missing `inputs`",
            "a transform needs at least one upstream",
        ],
    );
    check(
        &e[1],
        9,
        Some("sinks.out"),
        &["missing `inputs`", "a sink needs at least one upstream"],
    );
    check(&e[2], 14, Some("sinks.out2.inputs"), &["`inputs` is empty"]);
}

// 11
#[test]
fn source_given_inputs() {
    let text =
        format!("[sources.gen]\ntype = \"generator\"\ncount = 10\ninputs = [\"x\"]\n\n{OUT}");
    let e = one_bad_file(&text, &[]);
    assert_eq!(e.len(), 1, "{e:#?}");
    check(
        &e[0],
        4,
        Some("sources.gen.inputs"),
        &["a source", "takes no `inputs`"],
    );
}

// 12
#[test]
fn missing_required_option() {
    let text = "\
[sources.app]
type = \"file\"
read_from = \"end\"

[sinks.out]
type = \"file\"
inputs = [\"app\"]
encoding = \"ndjson\"
";
    let e = one_bad_file(text, &[]);
    assert_eq!(e.len(), 2, "{e:#?}");
    // A missing key is located at its table.
    check(
        &e[0],
        1,
        Some("sources.app.include"),
        &["missing field `include`"],
    );
    check(&e[1], 5, Some("sinks.out.path"), &["missing field `path`"]);
}

// 13
#[test]
fn bad_duration_and_bad_size() {
    let text = "\
[sources.app]
type = \"file\"
include = [\"/tmp/*.log\"]
glob_interval = \"5x\"
max_line_bytes = \"10XB\"

[sinks.out]
type = \"blackhole\"
inputs = [\"app\"]
";
    let e = one_bad_file(text, &[]);
    // Both, though they are in the same component.
    assert_eq!(e.len(), 2, "{e:#?}");
    check(
        &e[0],
        4,
        Some("sources.app.glob_interval"),
        &["invalid duration `5x`", "\"250ms\""],
    );
    check(
        &e[1],
        5,
        Some("sources.app.max_line_bytes"),
        &["invalid size `10XB`", "\"64KiB\""],
    );
}

// 14
#[test]
fn type_mistakes() {
    let text = "\
[engine]
batch_size = \"big\"

[sources.app]
type = \"file\"
include = \"notalist\"

[sinks.out]
type = \"blackhole\"
inputs = [\"app\"]
";
    let e = one_bad_file(text, &[]);
    assert_eq!(e.len(), 2, "{e:#?}");
    check(
        &e[0],
        2,
        Some("engine.batch_size"),
        &["invalid type: string \"big\"", "expected a whole number"],
    );
    check(
        &e[1],
        6,
        Some("sources.app.include"),
        &["invalid type: string \"notalist\"", "expected an array"],
    );
}

// 15
#[test]
fn environment_variables() {
    let text = "\
[engine]
data_dir = \"${SLUICE_TEST_DATA_DIR:-/tmp/sluice-test}\"
batch_size = ${SLUICE_TEST_BATCH:-512}

[sources.app]
type = \"file\"
include = [\"${SLUICE_TEST_LOG_DIR}/*.log\"]

[sinks.out]
type = \"${SLUICE_TEST_SINK}\"
inputs = [\"app\"]
";
    let set = [
        ("SLUICE_TEST_LOG_DIR", "/var/log"),
        ("SLUICE_TEST_SINK", "blackhole"),
    ];
    // Defaults fill in unset variables (else `batch_size = ` is not TOML), set ones are used.
    one_good_file(text, &set);

    let e = one_bad_file(text, &set[..1]);
    assert_eq!(e.len(), 1, "{e:#?}");
    check(
        &e[0],
        10,
        None,
        &[
            "environment variable `SLUICE_TEST_SINK` is not set",
            "${SLUICE_TEST_SINK:-default}",
        ],
    );

    // Every unset variable, each on its line.
    let e = one_bad_file(&format!("{text}path = \"${{SLUICE_TEST_UNSET}}\"\n"), &[]);
    assert_eq!(e.len(), 3, "{e:#?}");
    check(&e[0], 7, None, &["`SLUICE_TEST_LOG_DIR` is not set"]);
    check(&e[1], 10, None, &["`SLUICE_TEST_SINK` is not set"]);
    check(&e[2], 12, None, &["`SLUICE_TEST_UNSET` is not set"]);
}

// 16
#[test]
fn invalid_toml_syntax() {
    let e = one_bad_file(
        &format!("[sources.gen]\ntype = \"generator\ncount = 10\n\n{OUT}"),
        &[],
    );
    assert_eq!(e.len(), 1, "{e:#?}");
    check(&e[0], 2, None, &["invalid TOML", "string"]);
    assert_eq!(e[0].column, Some(18), "{e:?}");

    let e = one_bad_file(
        &format!(
            "{GEN}\n[sinks.out]\ntype = \"blackhole\"\ntype = \"console\"\ninputs = [\"gen\"]\n"
        ),
        &[],
    );
    assert_eq!(e.len(), 1, "{e:#?}");
    check(
        &e[0],
        7,
        None,
        &["invalid TOML", "duplicate key `type`", "`sinks.out`"],
    );
    assert_eq!(e[0].column, Some(1), "{e:?}");

    let e = one_bad_file(&format!("{GEN}count = = 10\n\n{OUT}"), &[]);
    assert_eq!(e.len(), 1, "{e:#?}");
    check(&e[0], 4, None, &["invalid TOML", "expected"]);
    assert_eq!(e[0].column, Some(9), "{e:?}");
}

// 17
#[test]
fn invalid_condition() {
    let text = format!(
        "{GEN}
[transforms.keep]
type = \"filter\"
inputs = [\"gen\"]
condition = 'level =='

[sinks.out]
type = \"blackhole\"
inputs = [\"keep\"]
"
    );
    let e = one_bad_file(&text, &[]);
    assert_eq!(e.len(), 1, "{e:#?}");
    check(
        &e[0],
        8,
        Some("transforms.keep.condition"),
        &["invalid condition", "expected an expression", "column 9"],
    );
}

// 18
#[test]
fn duplicate_ids_across_sections() {
    let text = format!(
        "{GEN}
[transforms.out]
type = \"filter\"
inputs = [\"gen\"]
condition = 'level == \"error\"'

[sinks.out]
type = \"blackhole\"
inputs = [\"out\"]

[sinks.gen]
type = \"blackhole\"
inputs = [\"out\"]
"
    );
    let e = one_bad_file(&text, &[]);
    assert_eq!(e.len(), 2, "{e:#?}");
    check(
        &e[0],
        10,
        Some("sinks.out"),
        &["component ID `out` is also used in [transforms]", "unique"],
    );
    check(
        &e[1],
        14,
        Some("sinks.gen"),
        &["component ID `gen` is also used in [sources]", "unique"],
    );
}

// 19
#[test]
fn several_files_report_all_errors() {
    let good = format!("{GEN}\n{OUT}");
    let bad1 = format!(
        "[engine]\nshards = 0\n\n{GEN}\n[sinks.out]\ntype = \"blackhole\"\ninputs = [\"nope\"]\n"
    );
    let bad2 = format!("{GEN}count = 5\n\n{OUT}");
    let bad3 = format!("{GEN}\n[transforms.p]\ntype = \"parse\"\ninputs = [\"gen\"]\n\n{OUT}\nwhen_full = \"explode\"\n");
    let (code, stdout, stderr, paths) = run_validate(
        &[
            ("bad1.toml", &bad1),
            ("good.toml", &good),
            ("bad2.toml", &bad2),
            ("bad3.toml", &bad3),
        ],
        &[],
    );
    assert_eq!(code, 1, "stderr:\n{stderr}");
    assert_eq!(
        stdout,
        format!(
            "ok: {} (1 sources, 0 transforms, 1 sinks)\n",
            paths[1].display()
        )
    );
    let e1 = errors(&stderr, &paths[0]);
    assert_eq!(e1.len(), 2, "{stderr}");
    check(&e1[0], 2, Some("engine.shards"), &["between 1 and 1024"]);
    check(
        &e1[1],
        10,
        Some("sinks.out.inputs.0"),
        &["unknown input `nope`"],
    );
    assert!(errors(&stderr, &paths[1]).is_empty(), "{stderr}");
    let e2 = errors(&stderr, &paths[2]);
    assert_eq!(e2.len(), 1, "{stderr}");
    check(&e2[0], 4, None, &["invalid TOML", "duplicate key `count`"]);
    let e3 = errors(&stderr, &paths[3]);
    assert_eq!(e3.len(), 2, "{stderr}");
    check(
        &e3[0],
        5,
        Some("transforms.p.format"),
        &["missing field `format`"],
    );
    check(
        &e3[1],
        13,
        Some("sinks.out.when_full"),
        &["\"block\", \"drop_newest\" or \"sample\""],
    );
    assert!(
        stderr.ends_with("3 of 4 file(s) have errors\n"),
        "stderr:\n{stderr}"
    );
    // Files are reported in the order given.
    let first = |p: &Path| stderr.find(&format!("error: {}:", p.display())).unwrap();
    assert!(first(&paths[0]) < first(&paths[2]) && first(&paths[2]) < first(&paths[3]));
}

#[test]
fn several_errors_in_one_file_are_all_reported() {
    let text = "\
[engine]
shards = 2
batch_sise = 512

[sources.app]
type = \"file\"
include = [\"/var/log/*.log\"]
glob_interval = \"soon\"

[sources.gen]
type = \"generator\"
count = \"ten\"
format = \"json\"

[transforms.parse]
type = \"parse\"
inputs = [\"app\", \"gen\", \"ghost\"]
format = \"json\"

[transforms.keep]
type = \"filter\"
inputs = [\"parse\"]
condition = 'level = \"error\"'

[transforms.odd]
type = \"reverse\"
inputs = [\"parse\"]

[sinks.out]
type = \"file\"
inputs = [\"keep\", \"parse.errors\"]
path = \"/tmp/out.ndjson\"
colour = true
";
    let e = one_bad_file(text, &[]);
    let got: Vec<(usize, Option<&str>)> = e.iter().map(|d| (d.line, d.key.as_deref())).collect();
    assert_eq!(
        got,
        vec![
            (3, Some("engine.batch_sise")),
            (8, Some("sources.app.glob_interval")),
            (12, Some("sources.gen.count")),
            (17, Some("transforms.parse.inputs.2")),
            (23, Some("transforms.keep.condition")),
            (26, Some("transforms.odd.type")),
            (31, Some("sinks.out.inputs.1")),
            (33, Some("sinks.out.colour")),
        ],
        "{e:#?}"
    );
    check(&e[0], 3, Some("engine.batch_sise"), &["unknown field"]);
    check(
        &e[1],
        8,
        Some("sources.app.glob_interval"),
        &["invalid duration `soon`"],
    );
    check(
        &e[2],
        12,
        Some("sources.gen.count"),
        &["invalid type: string \"ten\""],
    );
    check(
        &e[3],
        17,
        Some("transforms.parse.inputs.2"),
        &["unknown input `ghost`"],
    );
    check(
        &e[4],
        23,
        Some("transforms.keep.condition"),
        &["invalid condition", "column"],
    );
    check(
        &e[5],
        26,
        Some("transforms.odd.type"),
        &["unknown transform type `reverse`"],
    );
    check(
        &e[6],
        31,
        Some("sinks.out.inputs.1"),
        &["no output named `errors`", "dropped"],
    );
    check(
        &e[7],
        33,
        Some("sinks.out.colour"),
        &["unknown field `colour`"],
    );
}

// 20
#[test]
fn shipped_configs_validate() {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../configs");
    let mut files: Vec<PathBuf> = std::fs::read_dir(&dir)
        .expect("configs dir")
        .map(|e| e.expect("dir entry").path())
        .filter(|p| p.extension().is_some_and(|x| x == "toml"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no configs in {}", dir.display());
    // Their `${VAR:-default}`s must work without any `SLUICE_*` set.
    let out = sluice()
        .arg("validate")
        .args(&files)
        .output()
        .expect("run sluice");
    let stdout = String::from_utf8_lossy(&out.stdout);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "stderr:\n{stderr}");
    assert!(stderr.is_empty(), "stderr:\n{stderr}");
    for f in &files {
        assert!(
            stdout.contains(&format!("ok: {} (", f.display())),
            "{} not ok:\n{stdout}",
            f.display()
        );
    }
}

/// A sink's disk buffer: a good one passes; a bad `sync`, size, `when_full`, type or option
/// is reported at its key.
#[test]
fn disk_buffer_options_are_checked_at_their_key() {
    let sink = "[sinks.out]\ntype = \"file\"\ninputs = [\"gen\"]\npath = \"/tmp/x.log\"\n";
    one_good_file(
        &format!("{GEN}{sink}buffer = {{ type = \"disk\", max_size = \"1GiB\", sync = \"interval:100ms\" }}\n"),
        &[],
    );
    for (buffer, key, fragment) in [
        (
            "{ type = \"disk\", sync = \"sometimes\" }",
            "sinks.out.buffer.sync",
            "batch",
        ),
        (
            "{ type = \"disk\", max_size = \"lots\" }",
            "sinks.out.buffer.max_size",
            "",
        ),
        (
            "{ type = \"disk\", when_full = \"sample\" }",
            "sinks.out.buffer.when_full",
            "drop_newest",
        ),
        ("{ type = \"tape\" }", "sinks.out.buffer.type", "disk"),
        (
            "{ type = \"disk\", maxsize = \"1GiB\" }",
            "sinks.out.buffer.maxsize",
            "unknown buffer option",
        ),
    ] {
        let errs = one_bad_file(&format!("{GEN}{sink}buffer = {buffer}\n"), &[]);
        assert_eq!(errs.len(), 1, "{buffer}: {errs:?}");
        check(&errs[0], 8, Some(key), &[fragment]);
    }
}

/// The `http` sink's `retry` and `circuit_breaker` tables: a bad value inside one is
/// reported at its dotted key (`sinks.out.retry.max`), on its line.
#[test]
fn http_sink_retry_and_breaker_options_are_checked_at_their_key() {
    let sink = "[sinks.out]\ntype = \"http\"\ninputs = [\"gen\"]\nuri = \"http://127.0.0.1:9/\"\n";
    one_good_file(
        &format!("{GEN}{sink}retry = {{ initial = \"50ms\", max = \"10s\", max_retries = \"unlimited\", budget = 0.5 }}\ncircuit_breaker = {{ failure_threshold = 5, cool_down = \"1s\", half_open_requests = 2 }}\nmax_in_flight = 16\nresponse = \"bulk\"\n"),
        &[],
    );
    for (option, key, fragment) in [
        (
            "retry = { initial = \"1s\", max = \"10ms\" }",
            "sinks.out.retry.max",
            "at least `initial`",
        ),
        (
            "retry = { initial = \"0s\" }",
            "sinks.out.retry.initial",
            "more than 0",
        ),
        (
            "retry = { budget = 11.0 }",
            "sinks.out.retry.budget",
            "between 0 and 10",
        ),
        (
            "retry = { max_retries = \"forever\" }",
            "sinks.out.retry.max_retries",
            "unlimited",
        ),
        (
            "retry = { max_retries = -1 }",
            "sinks.out.retry.max_retries",
            "unlimited",
        ),
        (
            "retry = { tries = 3 }",
            "sinks.out.retry.tries",
            "unknown field",
        ),
        (
            "circuit_breaker = { failure_threshold = 0 }",
            "sinks.out.circuit_breaker.failure_threshold",
            "between 1",
        ),
        (
            "circuit_breaker = { cool_down = \"soon\" }",
            "sinks.out.circuit_breaker.cool_down",
            "invalid duration",
        ),
        (
            "circuit_breaker = { half_open_requests = 0 }",
            "sinks.out.circuit_breaker.half_open_requests",
            "between 1 and 256",
        ),
        (
            "max_in_flight = 0",
            "sinks.out.max_in_flight",
            "between 1 and 4096",
        ),
        (
            "response = \"bulk\"\nencoding = \"text\"",
            "sinks.out.response",
            "ndjson",
        ),
        (
            "response = \"items\"",
            "sinks.out.response",
            "unknown variant",
        ),
    ] {
        let errs = one_bad_file(&format!("{GEN}{sink}{option}\n"), &[]);
        assert_eq!(errs.len(), 1, "{option}: {errs:?}");
        check(&errs[0], 8, Some(key), &[fragment]);
    }
}
/// `when_full = "sample"` on a sink's memory ring, with or without `sample_rate`, passes; a
/// bad `sample_rate`, or one without `sample`, is reported at its key.
#[test]
fn when_full_sample_and_its_rate_are_checked_at_their_key() {
    let sink = "[sinks.out]\ntype = \"file\"\ninputs = [\"gen\"]\npath = \"/tmp/x.log\"\n";
    one_good_file(&format!("{GEN}{sink}when_full = \"sample\"\n"), &[]);
    one_good_file(
        &format!("{GEN}{sink}when_full = \"sample\"\nsample_rate = 100\n"),
        &[],
    );
    for (extra, line, key, fragment) in [
        (
            "when_full = \"sample\"\nsample_rate = 1\n",
            9,
            "sinks.out.sample_rate",
            "from 2 to 1000000",
        ),
        (
            "when_full = \"sample\"\nsample_rate = \"often\"\n",
            9,
            "sinks.out.sample_rate",
            "whole number",
        ),
        (
            "sample_rate = 10\n",
            8,
            "sinks.out.sample_rate",
            "only with when_full = \"sample\"",
        ),
        (
            "when_full = \"drop_newest\"\nsample_rate = 10\n",
            9,
            "sinks.out.sample_rate",
            "only with when_full = \"sample\"",
        ),
    ] {
        let errs = one_bad_file(&format!("{GEN}{sink}{extra}"), &[]);
        assert_eq!(errs.len(), 1, "{extra}: {errs:?}");
        check(&errs[0], line, Some(key), &[fragment]);
    }
}

/// `ID.dead_letter`: valid for an http sink; for a sink type without it, or in a cycle (a
/// sink reading its own dead letter, directly or through other components), an error at the
/// input.
#[test]
fn dead_letter_inputs_are_checked() {
    let http = |id: &str, inputs: &str| {
        format!("[sinks.{id}]\ntype = \"http\"\ninputs = {inputs}\nuri = \"http://127.0.0.1:9/\"\n")
    };
    one_good_file(
        &format!(
            "{GEN}{}[sinks.dlq]\ntype = \"file\"\ninputs = [\"es.dead_letter\"]\npath = \"/tmp/y.log\"\n",
            http("es", "[\"gen\"]")
        ),
        &[],
    );
    // A file sink has no dead-letter output.
    let errs = one_bad_file(
        &format!(
            "{GEN}[sinks.out]\ntype = \"file\"\ninputs = [\"gen\"]\npath = \"/tmp/x.log\"\n\
             [sinks.dlq]\ntype = \"file\"\ninputs = [\"out.dead_letter\"]\npath = \"/tmp/y.log\"\n"
        ),
        &[],
    );
    assert_eq!(errs.len(), 1, "{errs:?}");
    check(
        &errs[0],
        10,
        Some("sinks.dlq.inputs.0"),
        &[
            "sink `out` (file) has no output named `dead_letter`",
            "http",
        ],
    );
    // An http sink reading its own dead letter.
    let errs = one_bad_file(
        &format!("{GEN}{}", http("es", "[\"gen\", \"es.dead_letter\"]")),
        &[],
    );
    assert_eq!(errs.len(), 1, "{errs:?}");
    check(
        &errs[0],
        6,
        Some("sinks.es.inputs.1"),
        &["`es` reads its own output `es.dead_letter`"],
    );
    // Through a transform.
    let errs = one_bad_file(
        &format!(
            "{GEN}[transforms.t]\ntype = \"fields\"\ninputs = [\"es.dead_letter\"]\nremove = [\"x\"]\n{}",
            http("es", "[\"gen\", \"t\"]")
        ),
        &[],
    );
    assert_eq!(errs.len(), 1, "{errs:?}");
    check(
        &errs[0],
        6,
        Some("transforms.t.inputs"),
        &["cycle: t -> es -> t"],
    );
    // Two http sinks reading each other's dead letter.
    let errs = one_bad_file(
        &format!(
            "{GEN}{}{}",
            http("a", "[\"gen\", \"b.dead_letter\"]"),
            http("b", "[\"a.dead_letter\"]")
        ),
        &[],
    );
    assert_eq!(errs.len(), 1, "{errs:?}");
    check(&errs[0], 6, Some("sinks.a.inputs"), &["cycle: a -> b -> a"]);
}
