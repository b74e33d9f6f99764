//! Process measurements from `/proc`: CPU seconds (user + system, all threads) from
//! `/proc/PID/stat`, peak resident memory (VmHWM) from `/proc/PID/status`, and per thread
//! (`/proc/PID/task/TID/`) CPU seconds and context switches, grouped by thread name; and the
//! host's CPU time from `/proc/stat`, to tell how much a hypervisor stole during a run.

use std::fs;

use anyhow::{anyhow, bail, Context, Result};

/// Clock ticks per second, the unit of utime/stime in `/proc/PID/stat`.
pub fn clock_ticks_per_sec() -> f64 {
    // SAFETY: sysconf only reads a configuration value; it has no memory-safety preconditions.
    let ticks = unsafe { libc::sysconf(libc::_SC_CLK_TCK) };
    if ticks > 0 {
        ticks as f64
    } else {
        100.0
    }
}

/// utime + stime, in clock ticks, from the text of `/proc/PID/stat`. The command name (field 2)
/// is in parentheses and may itself hold spaces and parentheses, so fields are counted from the
/// last `)`.
pub fn parse_stat_cpu_ticks(stat: &str) -> Result<u64> {
    let close = stat
        .rfind(')')
        .ok_or_else(|| anyhow!("no command name in stat"))?;
    // After the name: field 3 (state) is index 0, so utime (field 14) is index 11, stime 12.
    let fields: Vec<&str> = stat[close + 1..].split_ascii_whitespace().collect();
    let field = |i: usize, name: &str| -> Result<u64> {
        fields
            .get(i)
            .ok_or_else(|| anyhow!("stat has no {name} field"))?
            .parse::<u64>()
            .map_err(|_| anyhow!("bad {name} in stat"))
    };
    Ok(field(11, "utime")? + field(12, "stime")?)
}

/// CPU seconds (user + system, all threads, living and exited) the process has used so far.
pub fn cpu_seconds(pid: u32) -> Result<f64> {
    let path = format!("/proc/{pid}/stat");
    let stat = fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
    let ticks = parse_stat_cpu_ticks(&stat).with_context(|| format!("parsing {path}"))?;
    Ok(ticks as f64 / clock_ticks_per_sec())
}

/// VmHWM (peak resident set size) in KiB, from the text of `/proc/PID/status`.
pub fn parse_vm_hwm_kib(status: &str) -> Result<u64> {
    let line = status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .ok_or_else(|| anyhow!("no VmHWM line"))?;
    let mut parts = line.split_ascii_whitespace();
    let number = parts.next().ok_or_else(|| anyhow!("empty VmHWM line"))?;
    let value: u64 = number
        .parse()
        .map_err(|_| anyhow!("bad VmHWM value {number:?}"))?;
    match parts.next() {
        None | Some("kB") | Some("KB") | Some("KiB") => Ok(value),
        Some(unit) => bail!("unexpected VmHWM unit {unit:?}"),
    }
}

/// Peak RSS of the process in KiB.
pub fn peak_rss_kib(pid: u32) -> Result<u64> {
    let path = format!("/proc/{pid}/status");
    let status = fs::read_to_string(&path).with_context(|| format!("reading {path}"))?;
    parse_vm_hwm_kib(&status).with_context(|| format!("parsing {path}"))
}

/// KiB to MiB.
pub fn kib_to_mib(kib: u64) -> f64 {
    kib as f64 / 1024.0
}

/// The threads of one name (`sluice-shard-0`, `sluice-src-in`, ...), summed: a runtime's
/// helper threads carry their parent's name.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ThreadGroup {
    pub name: String,
    pub cpu_seconds: f64,
    /// Voluntary context switches: times a thread went to sleep (and was woken again).
    pub sleeps: u64,
    /// Involuntary context switches: times a thread was preempted.
    pub preempted: u64,
}

/// `voluntary_ctxt_switches` and `nonvoluntary_ctxt_switches` from the text of a
/// `/proc/PID/task/TID/status`.
pub fn parse_ctxt_switches(status: &str) -> Result<(u64, u64)> {
    let field = |key: &str| -> Result<u64> {
        let v = status
            .lines()
            .find_map(|l| l.strip_prefix(key))
            .ok_or_else(|| anyhow!("no {key} line"))?;
        v.trim()
            .parse()
            .map_err(|_| anyhow!("bad {key} value {:?}", v.trim()))
    };
    Ok((
        field("voluntary_ctxt_switches:")?,
        field("nonvoluntary_ctxt_switches:")?,
    ))
}

/// Every living thread of the process, grouped by name (sorted). A thread that ends between
/// listing and reading is skipped.
pub fn thread_groups(pid: u32) -> Result<Vec<ThreadGroup>> {
    let dir = format!("/proc/{pid}/task");
    let mut groups: Vec<ThreadGroup> = Vec::new();
    for entry in fs::read_dir(&dir).with_context(|| format!("reading {dir}"))? {
        let path = entry?.path();
        let (Ok(name), Ok(stat), Ok(status)) = (
            fs::read_to_string(path.join("comm")),
            fs::read_to_string(path.join("stat")),
            fs::read_to_string(path.join("status")),
        ) else {
            continue;
        };
        let ticks = parse_stat_cpu_ticks(&stat).with_context(|| format!("{}", path.display()))?;
        let (sleeps, preempted) =
            parse_ctxt_switches(&status).with_context(|| format!("{}", path.display()))?;
        let name = name.trim().to_string();
        let group = match groups.iter_mut().position(|g| g.name == name) {
            Some(i) => &mut groups[i],
            None => {
                groups.push(ThreadGroup {
                    name,
                    ..ThreadGroup::default()
                });
                groups.last_mut().expect("just pushed")
            }
        };
        group.cpu_seconds += ticks as f64 / clock_ticks_per_sec();
        group.sleeps += sleeps;
        group.preempted += preempted;
    }
    groups.sort_by(|a, b| a.name.cmp(&b.name));
    Ok(groups)
}

/// What each thread group did between two [`thread_groups`] samples `secs` apart, per
/// second: CPU in cores, sleeps and preemptions. Groups that were not in both samples are
/// left out.
pub fn thread_rates(before: &[ThreadGroup], after: &[ThreadGroup], secs: f64) -> Vec<ThreadGroup> {
    after
        .iter()
        .filter_map(|a| {
            let b = before.iter().find(|b| b.name == a.name)?;
            Some(ThreadGroup {
                name: a.name.clone(),
                cpu_seconds: (a.cpu_seconds - b.cpu_seconds).max(0.0) / secs,
                sleeps: (a.sleeps.saturating_sub(b.sleeps) as f64 / secs).round() as u64,
                preempted: (a.preempted.saturating_sub(b.preempted) as f64 / secs).round() as u64,
            })
        })
        .collect()
}

/// The host's CPU time, all CPUs, in clock ticks: the first (`cpu `) line of `/proc/stat`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HostTicks {
    /// Every state (user, nice, system, idle, iowait, irq, softirq, steal).
    pub total: u64,
    /// Time this (virtual) machine was ready to run but the hypervisor ran something else.
    pub steal: u64,
}

/// Reads [`HostTicks`] from the text of `/proc/stat`.
pub fn parse_host_ticks(stat: &str) -> Result<HostTicks> {
    let line = stat
        .lines()
        .find(|l| l.starts_with("cpu "))
        .ok_or_else(|| anyhow!("no `cpu` line in /proc/stat"))?;
    // user nice system idle iowait irq softirq steal [guest guest_nice: already in user/nice]
    let v: Vec<u64> = line
        .split_ascii_whitespace()
        .skip(1)
        .take(8)
        .map(|f| {
            f.parse::<u64>()
                .map_err(|_| anyhow!("bad field {f:?} in /proc/stat"))
        })
        .collect::<Result<_>>()?;
    if v.len() < 8 {
        bail!(
            "the `cpu` line of /proc/stat has {} fields, expected 8",
            v.len()
        );
    }
    Ok(HostTicks {
        total: v.iter().sum(),
        steal: v[7],
    })
}

/// The host's CPU time so far.
pub fn host_ticks() -> Result<HostTicks> {
    let stat = fs::read_to_string("/proc/stat").context("reading /proc/stat")?;
    parse_host_ticks(&stat)
}

/// Share of the host's CPU time stolen between two readings, in percent (0 when no time
/// passed).
pub fn steal_percent(before: HostTicks, after: HostTicks) -> f64 {
    let total = after.total.saturating_sub(before.total);
    if total == 0 {
        return 0.0;
    }
    after.steal.saturating_sub(before.steal) as f64 * 100.0 / total as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    const STATUS: &str = "Name:\tsluice\nUmask:\t0022\nState:\tS (sleeping)\nPid:\t4242\n\
                          VmPeak:\t 1234567 kB\nVmSize:\t 1200000 kB\nVmLck:\t       0 kB\n\
                          VmHWM:\t   52344 kB\nVmRSS:\t   50012 kB\nThreads:\t5\n";

    #[test]
    fn vm_hwm() {
        assert_eq!(parse_vm_hwm_kib(STATUS).unwrap(), 52_344);
        assert!((kib_to_mib(52_344) - 51.117).abs() < 0.001);
        assert!(parse_vm_hwm_kib("Name:\tx\nVmRSS:\t 1 kB\n").is_err());
        assert!(parse_vm_hwm_kib("VmHWM:\t abc kB\n").is_err());
    }

    #[test]
    fn stat_cpu_ticks() {
        let stat = "4242 (sluice) S 1 4242 4242 0 -1 4194560 2000 0 0 0 150 37 0 0 20 0 5 0 \
                    123456 1234567 12345 18446744073709551615 1 1 0 0 0 0 0 4096 17 0 0 0 0 0 0";
        assert_eq!(parse_stat_cpu_ticks(stat).unwrap(), 187);
    }

    #[test]
    fn stat_with_odd_command_name() {
        let stat = "7 (a) b (c) R 1 7 7 0 -1 0 0 0 0 0 10 5 0 0 20 0 1 0 1 1 1";
        assert_eq!(parse_stat_cpu_ticks(stat).unwrap(), 15);
        assert!(parse_stat_cpu_ticks("7 (short) R 1 2").is_err());
    }

    #[test]
    fn ctxt_switches() {
        let status = "Name:\tsluice-shard-0\nvoluntary_ctxt_switches:\t5501\n\
                      nonvoluntary_ctxt_switches:\t  42\n";
        assert_eq!(parse_ctxt_switches(status).unwrap(), (5501, 42));
        assert!(parse_ctxt_switches("voluntary_ctxt_switches:\t1\n").is_err());
        assert!(parse_ctxt_switches(
            "voluntary_ctxt_switches:\tx\nnonvoluntary_ctxt_switches:\t1\n"
        )
        .is_err());
    }

    #[test]
    fn thread_rates_per_second() {
        let g = |name: &str, cpu: f64, sleeps: u64, preempted: u64| ThreadGroup {
            name: name.to_string(),
            cpu_seconds: cpu,
            sleeps,
            preempted,
        };
        let before = [g("a", 1.0, 100, 10), g("gone", 5.0, 1, 1)];
        let after = [g("a", 2.0, 1100, 30), g("new", 1.0, 1, 1)];
        assert_eq!(
            thread_rates(&before, &after, 4.0),
            vec![g("a", 0.25, 250, 5)]
        );
    }

    #[test]
    fn host_ticks_and_steal() {
        let a = "cpu  100 5 50 800 10 1 4 30 7 0\ncpu0 50 2 25 400 5 0 2 15 0 0\nintr 1\n";
        let b = "cpu  200 5 70 900 10 1 4 60 7 0\n";
        let (a, b) = (parse_host_ticks(a).unwrap(), parse_host_ticks(b).unwrap());
        assert_eq!(
            a,
            HostTicks {
                total: 1000,
                steal: 30
            }
        );
        assert_eq!(b.total, 1250);
        // 30 of the 250 ticks between them were stolen.
        assert!((steal_percent(a, b) - 12.0).abs() < 1e-9);
        assert_eq!(steal_percent(a, a), 0.0);
        assert!(parse_host_ticks("cpu0 1 2 3\n").is_err());
        assert!(parse_host_ticks("cpu  1 2 3\n").is_err());
        assert!(parse_host_ticks("cpu  1 2 3 4 5 6 7 x\n").is_err());
        let now = host_ticks().unwrap();
        assert!(now.total > 0 && now.steal <= now.total);
    }

    #[test]
    fn measures_this_process() {
        // A named thread, alive (and named: the name is set from inside it) while sampled.
        let (started, wait_started) = std::sync::mpsc::channel();
        let (done, wait_done) = std::sync::mpsc::channel::<()>();
        let named = std::thread::Builder::new()
            .name("measure-test".into())
            .spawn(move || {
                started.send(()).unwrap();
                let _ = wait_done.recv();
            })
            .unwrap();
        wait_started.recv().unwrap();
        let groups = thread_groups(std::process::id()).unwrap();
        done.send(()).unwrap();
        named.join().unwrap();
        assert!(
            groups.iter().any(|g| g.name == "measure-test"),
            "{groups:?}"
        );
        let pid = std::process::id();
        assert!(cpu_seconds(pid).unwrap() >= 0.0);
        assert!(peak_rss_kib(pid).unwrap() > 0);
        assert!(clock_ticks_per_sec() > 0.0);
    }
}
