//! Each built-in workload category, run on the simulator: the server-reported
//! mean prompt and output lengths land within 5% of the profile's means.

use stampede_tests::{Proc, bin, plan_file};
use std::process::Command;
use std::time::Duration;

/// (profile, mean input tokens, mean output tokens) as documented in docs/workloads.md.
const PROFILES: [(&str, f64, f64); 5] = [
    ("chat", 512.0, 256.0),
    ("classification", 1024.0, 4.5),
    ("summarization", 2048.0, 256.0),
    ("code", 512.0, 768.0),
    ("translation", 256.0, 256.0),
];

#[test]
fn each_category_has_its_documented_mean_lengths() {
    for (profile, input_mean, output_mean) in PROFILES {
        let plan = format!(
            r#"
[run]
name = "{profile}"
seed = 11
[agents]
local = 2
[target.simulator]
ttft = "1ms"
itl = "0s"
output_tokens = 100000
[request]
stream = false
[[workload]]
profile = "{profile}"
[[phase]]
kind = "concurrency"
users = 16
requests = 1200
duration = "120s"
"#
        );
        let (dir, path) = plan_file(&plan);
        let out = dir.path().join("run");
        let mut cmd = Command::new(bin("controller"));
        cmd.arg("run").arg(&path).arg("--out").arg(&out);
        let (code, output) = Proc::spawn(cmd).wait_exit(Duration::from_secs(180));
        assert_eq!(code, Some(0), "{profile}: {output}");
        let summary: serde_json::Value =
            serde_json::from_str(&std::fs::read_to_string(out.join("summary.json")).unwrap())
                .unwrap();
        let phase = &summary["phases"][0];
        let ok = phase["requests"]["ok"].as_u64().unwrap() as f64;
        assert_eq!(ok, 1200.0, "{profile}: {phase}");
        let got_in = phase["input_tokens"].as_u64().unwrap() as f64 / ok;
        let got_out = phase["output_tokens"].as_u64().unwrap() as f64 / ok;
        eprintln!(
            "{profile}: input {got_in:.1} (profile {input_mean}), output {got_out:.1} (profile {output_mean})"
        );
        assert!(
            (got_in / input_mean - 1.0).abs() < 0.05,
            "{profile}: mean input {got_in} vs {input_mean}"
        );
        assert!(
            (got_out / output_mean - 1.0).abs() < 0.05,
            "{profile}: mean output {got_out} vs {output_mean}"
        );
    }
}
