//! Small pure helpers: percentiles, rates, and reading what other programs
//! print (`redis-benchmark --csv`, `/proc/<pid>/status`).

/// The `p`-th percentile (0 to 100) by nearest rank; `None` when empty.
pub fn percentile(values: &[f64], p: f64) -> Option<f64> {
    if values.is_empty() {
        return None;
    }
    let mut sorted = values.to_vec();
    sorted.sort_by(f64::total_cmp);
    let rank = (p / 100.0 * sorted.len() as f64).ceil() as usize;
    Some(sorted[rank.clamp(1, sorted.len()) - 1])
}

/// `count` per second over `seconds` (0 when no time passed).
pub fn rate(count: u64, seconds: f64) -> f64 {
    if seconds > 0.0 { count as f64 / seconds } else { 0.0 }
}

/// The requests per second of `test` in `redis-benchmark --csv` output
/// (`"test","rps",...` then `"SET","412371.12",...`).
pub fn redis_benchmark_rps(csv: &str, test: &str) -> Option<f64> {
    csv.lines().find_map(|line| {
        let mut cells = line.split(',').map(|c| c.trim().trim_matches('"'));
        if cells.next()? != test {
            return None;
        }
        cells.next()?.parse().ok()
    })
}

/// A `kB` line of `/proc/<pid>/status` (`VmHWM`, `VmRSS`, ...) in MiB.
pub fn proc_status_mib(status: &str, field: &str) -> Option<f64> {
    status.lines().find_map(|line| {
        let rest = line.strip_prefix(field)?.strip_prefix(':')?;
        let kb: f64 = rest.trim().strip_suffix("kB")?.trim().parse().ok()?;
        Some(kb / 1024.0)
    })
}

/// Peak resident memory of a running process, in MiB (Linux).
pub fn peak_rss_mib(pid: u32) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    proc_status_mib(&status, "VmHWM")
}

/// Rounds to `digits` decimals, for readable JSON.
pub fn round(value: f64, digits: i32) -> f64 {
    let scale = 10f64.powi(digits);
    (value * scale).round() / scale
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn percentiles_by_nearest_rank() {
        let values: Vec<f64> = (1..=100).rev().map(f64::from).collect();
        assert_eq!(percentile(&values, 50.0), Some(50.0));
        assert_eq!(percentile(&values, 99.0), Some(99.0));
        assert_eq!(percentile(&values, 100.0), Some(100.0));
        assert_eq!(percentile(&values, 0.0), Some(1.0));
        assert_eq!(percentile(&[7.0], 99.0), Some(7.0));
        assert_eq!(percentile(&[3.0, 1.0, 2.0], 50.0), Some(2.0));
        assert_eq!(percentile(&[], 50.0), None);
    }

    #[test]
    fn rates() {
        assert_eq!(rate(500, 2.0), 250.0);
        assert_eq!(rate(5, 0.0), 0.0);
    }

    #[test]
    fn reads_redis_benchmark_csv() {
        let csv = "\"test\",\"rps\",\"avg_latency_ms\",\"min_latency_ms\"\n\"SET\",\"412371.12\",\"0.231\",\"0.080\"\n";
        assert_eq!(redis_benchmark_rps(csv, "SET"), Some(412_371.12));
        assert_eq!(redis_benchmark_rps(csv, "GET"), None);
        assert_eq!(redis_benchmark_rps("", "SET"), None);
        // Redis 6 prints two columns only.
        assert_eq!(redis_benchmark_rps("\"SET\",\"1000.50\"\n", "SET"), Some(1000.5));
    }

    #[test]
    fn reads_proc_status() {
        let status = "Name:\tregis\nVmPeak:\t  200000 kB\nVmHWM:\t   40960 kB\nVmRSS:\t   20480 kB\n";
        assert_eq!(proc_status_mib(status, "VmHWM"), Some(40.0));
        assert_eq!(proc_status_mib(status, "VmRSS"), Some(20.0));
        assert_eq!(proc_status_mib(status, "VmSwap"), None);
    }

    #[test]
    fn reads_our_own_peak() {
        let mib = peak_rss_mib(std::process::id()).expect("a Linux /proc");
        assert!(mib > 0.0);
    }

    #[test]
    fn rounding() {
        assert_eq!(round(1.23456, 2), 1.23);
        assert_eq!(round(0.000_004_56, 6), 0.000_005);
    }
}
