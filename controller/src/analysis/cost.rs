//! Cost per token: with a plan's `[cost]` (GPU-hour price × GPU count), each
//! phase's wall time (start to last completion) becomes a cost, and its
//! output tokens a cost per million output tokens and tokens per currency
//! unit — the figure that compares deployments of different size.

use crate::model::PhaseCost;
use crate::model::PhaseSummary;
use stampede_plan::Cost;

impl PhaseCost {
    /// The cost of phase `s` on hardware `c`.
    pub fn of(c: &Cost, s: &PhaseSummary) -> PhaseCost {
        let cost = c.gpu_hour_price * f64::from(c.gpus) * s.finished_s / 3600.0;
        PhaseCost {
            currency: c.currency.clone(),
            gpus: c.gpus,
            gpu_hour_price: c.gpu_hour_price,
            cost,
            per_million_output_tokens: (s.output_tokens > 0)
                .then(|| cost / s.output_tokens as f64 * 1e6),
            output_tokens_per_unit: if cost > 0.0 {
                s.output_tokens as f64 / cost
            } else {
                0.0
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_gpu_hour_of_tokens() {
        let mut s = crate::model::tests::sample_run().phases.remove(0);
        s.finished_s = 1800.0;
        s.output_tokens = 2_000_000;
        let c = Cost {
            gpu_hour_price: 3.0,
            gpus: 2,
            currency: "EUR".into(),
        };
        let pc = PhaseCost::of(&c, &s);
        // 2 GPUs × 3.0/h × 0.5 h = 3.0; 2 M tokens → 1.5 per million.
        assert!((pc.cost - 3.0).abs() < 1e-12);
        assert!((pc.per_million_output_tokens.unwrap() - 1.5).abs() < 1e-12);
        assert!((pc.output_tokens_per_unit - 2_000_000.0 / 3.0).abs() < 1e-6);
        s.output_tokens = 0;
        assert_eq!(PhaseCost::of(&c, &s).per_million_output_tokens, None);
    }
}
