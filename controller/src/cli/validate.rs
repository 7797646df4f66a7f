//! `controller validate`: check a plan (or a sweep plan) without running it,
//! and say what it would run.

use super::exit;
use super::run::is_sweep;
use crate::analysis::inputs;
use crate::model::Status;
use crate::orchestrate::{serving, tokenizer};
use stampede_plan::{self as plan, Plan};
use std::path::Path;
use std::process::ExitCode;

/// Validate the plan at `path` and print what it holds.
pub fn command(path: &Path) -> ExitCode {
    if is_sweep(path) {
        return match crate::sweep::describe(path) {
            Ok(text) => {
                print!("{text}");
                exit::code(Status::Passed)
            }
            Err(e) => exit::error(&e, Status::BadInput),
        };
    }
    let loaded = plan::load(path).and_then(|p| {
        let words = match &p.target.tokenizer {
            Some(t) => Some(tokenizer::one_token_words(path, t)?),
            None => None,
        };
        Ok((p, words))
    });
    match loaded {
        Ok((p, words)) => {
            describe(path, &p, words.as_deref());
            exit::code(Status::Passed)
        }
        Err(e) => exit::error(&e, Status::BadInput),
    }
}

fn describe(path: &Path, p: &Plan, words: Option<&[String]>) {
    let mode = match p.agents.mode {
        plan::AgentMode::Local => "local",
        plan::AgentMode::Remote => "remote",
    };
    println!(
        "plan {} is valid: {} phase(s), {} {mode} agent(s)",
        path.display(),
        p.phases.len(),
        p.agents.count,
    );
    print!("{}", inputs::text(&inputs::datasets(p)));
    print!("{}", inputs::trace_text(&inputs::traces(p)));
    if let Some(k) = &p.kubernetes {
        println!("{}", crate::run::cluster::summary(k));
    }
    if let Some(s) = &p.serving {
        println!("{}", serving::summary(s));
    }
    if let (Some(t), Some(w)) = (&p.target.tokenizer, words) {
        println!(
            "tokenizer {}: prompts from {} one-token words",
            t.display(),
            w.len()
        );
    }
}
