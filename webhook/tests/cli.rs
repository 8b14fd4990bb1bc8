//! The binary's own surface: `--version` names the commit it was built from, and
//! `completion <shell>` prints scripts that the shells load and that know every command.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // tests assert by unwrapping

use std::io::Write as _;
use std::path::Path;
use std::process::{Command, Stdio};

fn tollgate(args: &[&str]) -> (Option<i32>, String, String) {
    let out = assert_cmd::Command::cargo_bin("tollgate")
        .unwrap()
        .args(args)
        .output()
        .unwrap();
    (
        out.status.code(),
        String::from_utf8(out.stdout).unwrap(),
        String::from_utf8(out.stderr).unwrap(),
    )
}

/// What `build.rs` should have found: the override, else this checkout's HEAD, else `unknown`.
fn expected_commit() -> String {
    if let Ok(commit) = std::env::var("TOLLGATE_COMMIT")
        && !commit.trim().is_empty()
    {
        return commit.trim().to_string();
    }
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("..");
    if !root.join(".git").exists() {
        return "unknown".into();
    }
    let out = Command::new("git")
        .current_dir(&root)
        .args(["rev-parse", "--short", "HEAD"])
        .output()
        .unwrap();
    assert!(out.status.success());
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

#[test]
fn version_names_the_commit() {
    let (code, stdout, _) = tollgate(&["--version"]);
    assert_eq!(code, Some(0));
    assert_eq!(
        stdout,
        format!(
            "tollgate {} ({})\n",
            env!("CARGO_PKG_VERSION"),
            expected_commit()
        )
    );
}

const COMMANDS: &[&str] = &["verify", "eval", "serve", "test", "build", "completion"];

#[test]
fn bash_loads_the_completion_and_completes_commands_and_flags() {
    let (code, script, _) = tollgate(&["completion", "bash"]);
    assert_eq!(code, Some(0));
    // Load the script the way `source <(tollgate completion bash)` does, then ask its
    // completion function what follows `tollgate ` and `tollgate eval --n`.
    let probe = r#"
        source /dev/stdin
        complete -p tollgate
        COMP_WORDS=(tollgate ""); COMP_CWORD=1; _tollgate tollgate "" tollgate
        echo "commands: ${COMPREPLY[*]}"
        COMP_WORDS=(tollgate eval --n); COMP_CWORD=2; _tollgate tollgate --n eval
        echo "eval: ${COMPREPLY[*]}"
        COMP_WORDS=(tollgate verify --f); COMP_CWORD=2; _tollgate tollgate --f verify
        echo "verify: ${COMPREPLY[*]}"
    "#;
    let mut bash = Command::new("bash")
        .args(["-c", probe])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    bash.stdin
        .take()
        .unwrap()
        .write_all(script.as_bytes())
        .unwrap();
    let out = bash.wait_with_output().unwrap();
    let stdout = String::from_utf8(out.stdout).unwrap();
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(stdout.starts_with("complete "), "{stdout}");
    assert!(stdout.contains(" -F _tollgate tollgate\n"), "{stdout}");
    let line = |prefix: &str| {
        stdout
            .lines()
            .find_map(|l| l.strip_prefix(prefix))
            .unwrap()
            .split_whitespace()
            .map(str::to_string)
            .collect::<Vec<_>>()
    };
    let commands = line("commands: ");
    for c in COMMANDS {
        assert!(commands.iter().any(|w| w == c), "{c} in {commands:?}");
    }
    assert_eq!(line("eval: "), ["--namespace", "--no-expand"]);
    assert_eq!(line("verify: "), ["--format", "--fail-on-empty"]);
}

#[test]
fn zsh_fish_elvish_and_powershell_scripts_name_every_command() {
    for (shell, marker) in [
        ("zsh", "#compdef tollgate"),
        ("fish", "complete -c tollgate"),
        ("elvish", "edit:completion:arg-completer[tollgate]"),
        ("powershell", "Register-ArgumentCompleter"),
    ] {
        let (code, script, _) = tollgate(&["completion", shell]);
        assert_eq!(code, Some(0), "{shell}");
        assert!(script.contains(marker), "{shell}:\n{script}");
        for c in COMMANDS {
            assert!(script.contains(c), "{shell} lacks {c}");
        }
        assert!(script.contains("fail-on-empty"), "{shell}");
    }
}

#[test]
fn an_unknown_shell_is_refused_with_the_choices() {
    let (code, _, stderr) = tollgate(&["completion", "tcsh"]);
    assert_eq!(code, Some(2));
    assert!(
        stderr.contains("invalid value 'tcsh'")
            && stderr.contains("bash")
            && stderr.contains("zsh"),
        "{stderr}"
    );
}
