//! Process measurements from `/proc`: CPU seconds (user + system, all threads) from
//! `/proc/PID/stat`, and peak resident memory (VmHWM) from `/proc/PID/status`.

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
    fn measures_this_process() {
        let pid = std::process::id();
        assert!(cpu_seconds(pid).unwrap() >= 0.0);
        assert!(peak_rss_kib(pid).unwrap() > 0);
        assert!(clock_ticks_per_sec() > 0.0);
    }
}
