//! Every operator subcommand explains itself with an example, and the
//! top-level help documents the exit codes scripts rely on.

use std::process::Command;

fn help(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_regis"))
        .args(args)
        .arg("--help")
        .output()
        .expect("run regis");
    assert_eq!(
        out.status.code(),
        Some(0),
        "{args:?} --help: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

#[test]
fn each_subcommand_has_help_with_an_example() {
    for sub in [
        &["publish"][..],
        &["dlq"],
        &["dlq", "list"],
        &["dlq", "show"],
        &["dlq", "redrive"],
        &["verify"],
        &["resync"],
        &["lag"],
    ] {
        let text = help(sub);
        assert!(text.contains("Example"), "{sub:?} --help has no example:\n{text}");
    }
}

#[test]
fn the_top_level_help_documents_exit_codes() {
    let text = help(&[]);
    for needle in ["Exit codes", "0  done", "1  a divergence", "2  usage", "Example"] {
        assert!(text.contains(needle), "missing {needle:?} in:\n{text}");
    }
}

#[test]
fn usage_errors_exit_2() {
    let out = Command::new(env!("CARGO_BIN_EXE_regis"))
        .args(["verify", "--regions", "a,b"])
        .env_remove("REGIS_ENV_FILE")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", String::from_utf8_lossy(&out.stderr));
    let out = Command::new(env!("CARGO_BIN_EXE_regis"))
        .args(["resync", "--from", "redis://127.0.0.1:1"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "resync needs --to-region or --all");
}
