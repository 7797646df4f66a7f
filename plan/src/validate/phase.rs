//! `[[phase]]`: the kind is read first, then every kind-specific key that
//! is set must be one that kind reads ([`Kind::keys`]), then the kind's own
//! validator builds its [`PhaseKind`] variant from exactly those keys, and
//! last come the keys every phase shares (duration, bound, name, objectives,
//! warm-up and cool-down).

use super::{Ctx, MISSING, parse_slos};
use crate::duration::{HumanDuration, shown};
use crate::quote::{written, written_key};
use crate::slo::Slo;
use crate::trace::Format;
use crate::{Arrival, Phase, PhaseKind, PlanError, RawPhase, RequestSpec, Search, Stress};
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

const KINDS: &str = "expected \"baseline\", \"constant\", \"ramp\", \"concurrency\", \"stress\", \"soak\" or \"replay\"";

/// A phase's `kind`, before its keys are read.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Kind {
    Baseline,
    Constant,
    Ramp,
    Concurrency,
    Stress,
    Soak,
    Replay,
}

impl Kind {
    const ALL: [Kind; 7] = [
        Kind::Baseline,
        Kind::Constant,
        Kind::Ramp,
        Kind::Concurrency,
        Kind::Stress,
        Kind::Soak,
        Kind::Replay,
    ];

    fn name(self) -> &'static str {
        match self {
            Kind::Baseline => "baseline",
            Kind::Constant => "constant",
            Kind::Ramp => "ramp",
            Kind::Concurrency => "concurrency",
            Kind::Stress => "stress",
            Kind::Soak => "soak",
            Kind::Replay => "replay",
        }
    }

    /// The kind-specific keys this kind reads ([`RawPhase::kind_keys`]);
    /// any other one that is set is refused.
    fn keys(self) -> &'static [&'static str] {
        match self {
            Kind::Baseline => &["duration"],
            Kind::Constant => &[
                "duration",
                "rate",
                "arrival",
                "burstiness",
                "max_concurrency",
            ],
            Kind::Ramp => &[
                "duration",
                "from",
                "to",
                "steps",
                "arrival",
                "burstiness",
                "max_concurrency",
            ],
            Kind::Concurrency => &["duration", "users"],
            Kind::Stress => &[
                "step_duration",
                "from",
                "to",
                "search",
                "factor",
                "step",
                "precision",
                "max_steps",
                "max_error_rate",
                "min_achieved",
                "max_saturated",
                "arrival",
                "burstiness",
                "max_concurrency",
            ],
            Kind::Soak => &[
                "duration",
                "rate",
                "drift_windows",
                "max_drift",
                "arrival",
                "burstiness",
                "max_concurrency",
            ],
            Kind::Replay => &["duration", "trace", "max_concurrency"],
        }
    }

    /// The key holding the phase's length: each step's, for a stress phase.
    fn duration_key(self) -> &'static str {
        match self {
            Kind::Stress => "step_duration",
            _ => "duration",
        }
    }
}

impl RawPhase {
    /// The keys that belong to some kinds only, and whether each is set,
    /// in the order they are checked.
    fn kind_keys(&self) -> [(&'static str, bool); 21] {
        [
            ("max_concurrency", self.max_concurrency.is_some()),
            ("trace", self.trace.is_some()),
            ("arrival", self.arrival.is_some()),
            ("burstiness", self.burstiness.is_some()),
            ("rate", self.rate.is_some()),
            ("users", self.users.is_some()),
            ("from", self.from.is_some()),
            ("to", self.to.is_some()),
            ("steps", self.steps.is_some()),
            ("step_duration", self.step_duration.is_some()),
            ("search", self.search.is_some()),
            ("factor", self.factor.is_some()),
            ("step", self.step.is_some()),
            ("precision", self.precision.is_some()),
            ("max_steps", self.max_steps.is_some()),
            ("max_error_rate", self.max_error_rate.is_some()),
            ("min_achieved", self.min_achieved.is_some()),
            ("max_saturated", self.max_saturated.is_some()),
            ("drift_windows", self.drift_windows.is_some()),
            ("max_drift", self.max_drift.is_some()),
            ("duration", self.duration.is_some()),
        ]
    }

    /// Phase `i`, with the run-wide objectives `run_slo` merged in.
    pub(super) fn validate(
        &self,
        cx: &Ctx<'_>,
        i: usize,
        request: &RequestSpec,
        run_slo: &[Slo],
    ) -> Result<Phase, PlanError> {
        let key = |field: &str| format!("phase[{i}].{field}");
        let kind = match self.kind.as_deref() {
            None => return Err(cx.invalid(key("kind"), MISSING, KINDS)),
            Some(name) => Kind::ALL
                .into_iter()
                .find(|k| k.name() == name)
                .ok_or_else(|| cx.invalid(key("kind"), format!("{name:?}"), KINDS))?,
        };
        if let Some((field, _)) = self
            .kind_keys()
            .into_iter()
            .find(|(field, set)| *set && !kind.keys().contains(field))
        {
            let reason = if field == "max_concurrency" {
                format!(
                    "does not apply to kind {:?}: a closed loop's concurrency is its users; max_concurrency caps open-loop phases",
                    kind.name()
                )
            } else {
                format!("does not apply to kind {:?}", kind.name())
            };
            return Err(cx.invalid(key(field), written_key(self, field), reason));
        }
        if self.max_concurrency == Some(0) {
            return Err(cx.invalid(
                key("max_concurrency"),
                0,
                "must be at least 1 (or left out)",
            ));
        }
        let phase_kind = match kind {
            Kind::Baseline => PhaseKind::Baseline,
            Kind::Constant => PhaseKind::Constant {
                rate: self.rate(cx, i, kind)?,
                arrival: self.arrival(cx, i)?,
            },
            Kind::Ramp => self.ramp(cx, i)?,
            Kind::Concurrency => self.concurrency(cx, i)?,
            Kind::Stress => PhaseKind::Stress(self.stress(cx, i)?),
            Kind::Soak => self.soak(cx, i)?,
            Kind::Replay => self.replay(cx, i)?,
        };
        let duration = self.duration(cx, i, kind)?;
        if self.requests == Some(0) {
            return Err(cx.invalid(key("requests"), 0, "must be at least 1 (or left out)"));
        }
        let name = self.name(cx, i, kind)?;
        let own_slo = parse_slos(cx, &key("slo"), self.slo.as_deref())?;
        let (warmup, cooldown) = self.measured(cx, i, kind, duration)?;
        Ok(Phase {
            warmup,
            cooldown,
            name,
            kind: phase_kind,
            duration,
            max_requests: self.requests,
            max_concurrency: self.max_concurrency,
            drain: self
                .drain
                .as_ref()
                .map_or(request.timeout, HumanDuration::get),
            slo: crate::slo::combine(run_slo, &own_slo),
            faults: Vec::new(),
        })
    }

    /// `duration`, or a stress phase's `step_duration`.
    fn duration(&self, cx: &Ctx<'_>, i: usize, kind: Kind) -> Result<Duration, PlanError> {
        let key = format!("phase[{i}].{}", kind.duration_key());
        let Some(duration) = self.written_duration(kind) else {
            return Err(cx.invalid(
                key,
                MISSING,
                if kind == Kind::Stress {
                    "a stress phase needs the length of each step, e.g. \"20s\""
                } else {
                    "every phase needs a duration, e.g. \"30s\""
                },
            ));
        };
        cx.positive(&key, Some(duration), Duration::ZERO)
    }

    /// `duration` as written, or a stress phase's `step_duration`.
    fn written_duration(&self, kind: Kind) -> Option<&HumanDuration> {
        match kind {
            Kind::Stress => self.step_duration.as_ref(),
            _ => self.duration.as_ref(),
        }
    }

    /// `name`, by default the kind and the phase's position.
    fn name(&self, cx: &Ctx<'_>, i: usize, kind: Kind) -> Result<String, PlanError> {
        let name = self
            .name
            .clone()
            .unwrap_or_else(|| format!("{}-{i}", kind.name()));
        if let Some(reason) = crate::names::phase_problem(&name) {
            return Err(cx.invalid(format!("phase[{i}].name"), format!("{name:?}"), reason));
        }
        Ok(name)
    }

    /// `warmup` and `cooldown`, which must leave part of `duration` measured.
    fn measured(
        &self,
        cx: &Ctx<'_>,
        i: usize,
        kind: Kind,
        duration: Duration,
    ) -> Result<(Duration, Duration), PlanError> {
        let get = |d: Option<&HumanDuration>| d.map_or(Duration::ZERO, HumanDuration::get);
        let (warmup, cooldown) = (get(self.warmup.as_ref()), get(self.cooldown.as_ref()));
        // The key named is the cool-down when it is set, else the warm-up.
        let named = (self.cooldown.as_ref().map(|c| ("cooldown", c)))
            .or_else(|| self.warmup.as_ref().map(|w| ("warmup", w)));
        if let Some((field, written)) = named
            && warmup + cooldown >= duration
        {
            let what = if kind == Kind::Stress {
                "step"
            } else {
                "phase"
            };
            let length = shown(self.written_duration(kind), duration);
            let both = match &self.warmup {
                Some(w) if field == "cooldown" => format!("warm-up ({}) plus cool-down", w.shown()),
                _ => "warm-up plus cool-down".to_string(),
            };
            return Err(cx.invalid(
                format!("phase[{i}].{field}"),
                written.shown(),
                format!("{both} must leave part of the {length} {what} measured"),
            ));
        }
        Ok((warmup, cooldown))
    }

    /// `rate` of a constant or soak phase.
    fn rate(&self, cx: &Ctx<'_>, i: usize, kind: Kind) -> Result<f64, PlanError> {
        let key = format!("phase[{i}].rate");
        let Some(rate) = self.rate else {
            return Err(cx.invalid(
                key,
                MISSING,
                format!("kind {:?} needs a rate in requests per second", kind.name()),
            ));
        };
        check_rate(cx, &key, rate, false)?;
        Ok(rate)
    }

    fn soak(&self, cx: &Ctx<'_>, i: usize) -> Result<PhaseKind, PlanError> {
        let key = |field: &str| format!("phase[{i}].{field}");
        if self.drift_windows == Some(0) {
            return Err(cx.invalid(key("drift_windows"), 0, "must be at least 1"));
        }
        if let Some(d) = self.max_drift
            && !(d.is_finite() && d > 0.0)
        {
            return Err(cx.invalid(key("max_drift"), d, "must be a positive fraction, e.g. 0.2"));
        }
        Ok(PhaseKind::Soak {
            rate: self.rate(cx, i, Kind::Soak)?,
            arrival: self.arrival(cx, i)?,
            drift_windows: self.drift_windows,
            max_drift: self.max_drift,
        })
    }

    fn ramp(&self, cx: &Ctx<'_>, i: usize) -> Result<PhaseKind, PlanError> {
        let key = |field: &str| format!("phase[{i}].{field}");
        let (from, to) = self.rate_range(
            cx,
            i,
            true,
            "kind \"ramp\" needs `from` and `to` rates in requests per second",
        )?;
        if from == 0.0 && to == 0.0 {
            return Err(cx.invalid(key("to"), 0, "a ramp from 0 to 0 sends nothing"));
        }
        if let Some(n) = self.steps
            && !(1..=10_000).contains(&n)
        {
            return Err(cx.invalid(key("steps"), n, "must be between 1 and 10000"));
        }
        Ok(PhaseKind::Ramp {
            from,
            to,
            steps: self.steps,
            arrival: self.arrival(cx, i)?,
        })
    }

    /// `from` and `to` of a ramp (`zero_ok`) or a stress search, both
    /// required: `needed` says why when one is missing.
    fn rate_range(
        &self,
        cx: &Ctx<'_>,
        i: usize,
        zero_ok: bool,
        needed: &str,
    ) -> Result<(f64, f64), PlanError> {
        let key = |field: &str| format!("phase[{i}].{field}");
        let (Some(from), Some(to)) = (self.from, self.to) else {
            let missing = if self.from.is_none() { "from" } else { "to" };
            return Err(cx.invalid(key(missing), MISSING, needed));
        };
        check_rate(cx, &key("from"), from, zero_ok)?;
        check_rate(cx, &key("to"), to, zero_ok)?;
        Ok((from, to))
    }

    fn concurrency(&self, cx: &Ctx<'_>, i: usize) -> Result<PhaseKind, PlanError> {
        let key = format!("phase[{i}].users");
        let Some(users) = self.users else {
            return Err(cx.invalid(key, MISSING, "kind \"concurrency\" needs a number of users"));
        };
        if users == 0 || users > 1_000_000 {
            return Err(cx.invalid(key, users, "must be between 1 and 1000000"));
        }
        Ok(PhaseKind::Concurrency { users })
    }

    /// Check a "replay" phase's `trace` and read the file (when the context
    /// reads files).
    fn replay(&self, cx: &Ctx<'_>, i: usize) -> Result<PhaseKind, PlanError> {
        let key = |f: &str| format!("phase[{i}].trace{f}");
        let Some(t) = &self.trace else {
            return Err(cx.invalid(
                key(""),
                MISSING,
                "kind \"replay\" needs a trace, e.g. trace = { path = \"trace.csv\" }",
            ));
        };
        let Some(path) = &t.path else {
            return Err(cx.invalid(
                key(".path"),
                MISSING,
                "the trace file, relative to the plan file",
            ));
        };
        let format = match t.format.as_deref() {
            Some("csv") => Format::Csv,
            Some("jsonl") => Format::Jsonl,
            None if path.extension().is_some_and(|e| e == "jsonl") => Format::Jsonl,
            None => Format::Csv,
            Some(other) => {
                return Err(cx.invalid(
                    key(".format"),
                    format!("{other:?}"),
                    "expected \"csv\" or \"jsonl\"",
                ));
            }
        };
        let time_scale = t.time_scale.unwrap_or(1.0);
        if !(time_scale.is_finite() && time_scale > 0.0 && time_scale <= 1e6) {
            return Err(cx.invalid(
                key(".time_scale"),
                time_scale,
                "must be positive (2.0 replays twice as fast; at most 1000000)",
            ));
        }
        if t.max_records == Some(0) {
            return Err(cx.invalid(key(".max_records"), 0, "must be at least 1 (or left out)"));
        }
        if !cx.files {
            return Ok(PhaseKind::Replay {
                time_scale,
                trace: None,
            });
        }
        let full = cx.path.parent().unwrap_or(Path::new(".")).join(path);
        let max = t
            .max_records
            .map(|n| usize::try_from(n).unwrap_or(usize::MAX));
        let trace = crate::trace::load(&full, format, max).map_err(|e| {
            cx.invalid(
                key(".path"),
                format!("{:?}", path.display().to_string()),
                e.to_string(),
            )
        })?;
        Ok(PhaseKind::Replay {
            time_scale,
            trace: Some(Arc::new(trace)),
        })
    }

    fn stress(&self, cx: &Ctx<'_>, i: usize) -> Result<Stress, PlanError> {
        let key = |field: &str| format!("phase[{i}].{field}");
        let (from, to) = self.rate_range(
            cx,
            i,
            false,
            "kind \"stress\" needs `from` (first rate) and `to` (highest rate tried)",
        )?;
        if to < from {
            return Err(cx.invalid(key("to"), to, format!("must be at least `from` ({from})")));
        }
        let search = match self.search.as_deref().unwrap_or("adaptive") {
            "adaptive" => {
                if let Some(step) = self.step {
                    return Err(cx.invalid(
                        key("step"),
                        written(&step),
                        "applies to search = \"linear\"",
                    ));
                }
                let factor = self.factor.unwrap_or(2.0);
                if !(factor.is_finite() && factor > 1.0 && factor <= 100.0) {
                    return Err(cx.invalid(
                        key("factor"),
                        factor,
                        "must be above 1 (and at most 100)",
                    ));
                }
                let precision = self.precision.unwrap_or(0.05);
                if !(0.001..1.0).contains(&precision) {
                    return Err(cx.invalid(
                        key("precision"),
                        precision,
                        "must be between 0.001 and 1",
                    ));
                }
                Search::Adaptive { factor, precision }
            }
            "linear" => {
                for (field, set) in [("factor", self.factor), ("precision", self.precision)] {
                    if let Some(v) = set {
                        return Err(cx.invalid(
                            key(field),
                            written(&v),
                            "applies to search = \"adaptive\"",
                        ));
                    }
                }
                let Some(step) = self.step else {
                    return Err(cx.invalid(
                        key("step"),
                        MISSING,
                        "a linear search needs the rate added per step",
                    ));
                };
                check_rate(cx, &key("step"), step, false)?;
                Search::Linear { step }
            }
            other => {
                return Err(cx.invalid(
                    key("search"),
                    format!("{other:?}"),
                    "expected \"adaptive\" or \"linear\"",
                ));
            }
        };
        let max_steps = self.max_steps.unwrap_or(12);
        if !(1..=100).contains(&max_steps) {
            return Err(cx.invalid(key("max_steps"), max_steps, "must be between 1 and 100"));
        }
        let fraction = |field: &str, v: Option<f64>, default: f64| -> Result<f64, PlanError> {
            let v = v.unwrap_or(default);
            if (0.0..=1.0).contains(&v) {
                Ok(v)
            } else {
                Err(cx.invalid(key(field), v, "must be a fraction between 0 and 1"))
            }
        };
        Ok(Stress {
            from,
            to,
            search,
            max_steps,
            arrival: self.arrival(cx, i)?,
            max_error_rate: fraction("max_error_rate", self.max_error_rate, 0.01)?,
            min_achieved: fraction("min_achieved", self.min_achieved, 0.95)?,
            max_saturated: fraction("max_saturated", self.max_saturated, 0.25)?,
        })
    }

    fn arrival(&self, cx: &Ctx<'_>, i: usize) -> Result<Arrival, PlanError> {
        let key = |f: &str| format!("phase[{i}].{f}");
        let arrival = match self.arrival.as_deref().unwrap_or("uniform") {
            "uniform" => Arrival::Uniform,
            "poisson" => Arrival::Poisson,
            "gamma" => {
                let Some(b) = self.burstiness else {
                    return Err(cx.invalid(
                        key("burstiness"),
                        MISSING,
                        "arrival \"gamma\" needs a burstiness (gamma shape; 1 = Poisson)",
                    ));
                };
                if !b.is_finite() || b <= 0.0 || b > 1000.0 {
                    return Err(cx.invalid(
                        key("burstiness"),
                        b,
                        "must be positive (at most 1000)",
                    ));
                }
                Arrival::Gamma { burstiness: b }
            }
            other => {
                return Err(cx.invalid(
                    key("arrival"),
                    format!("{other:?}"),
                    "expected \"uniform\", \"poisson\" or \"gamma\"",
                ));
            }
        };
        if let Some(b) = self.burstiness
            && !matches!(arrival, Arrival::Gamma { .. })
        {
            return Err(cx.invalid(
                key("burstiness"),
                written(&b),
                "applies to arrival \"gamma\" only",
            ));
        }
        Ok(arrival)
    }
}

fn check_rate(cx: &Ctx<'_>, key: &str, rate: f64, zero_ok: bool) -> Result<(), PlanError> {
    let low_ok = if zero_ok { rate >= 0.0 } else { rate > 0.0 };
    if !rate.is_finite() || !low_ok || rate > 1_000_000.0 {
        let what = if zero_ok {
            "a rate ≥ 0"
        } else {
            "a positive rate"
        };
        return Err(cx.invalid(
            key,
            rate,
            format!("must be {what} in requests per second (at most 1000000)"),
        ));
    }
    Ok(())
}
