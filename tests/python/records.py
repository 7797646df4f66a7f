"""Read a run's per-request records with pandas, as docs/results.md shows.

Usage: records.py RUN_DIR — prints {phase index: rows} as JSON for the
end-to-end test to compare with summary.json.
"""
import json
import sys

import pandas as pd

df = pd.read_parquet(f"{sys.argv[1]}/requests")
print(df.groupby(["phase", "status"]).ttft_ms.describe(), file=sys.stderr)
print(json.dumps({str(k): int(v) for k, v in df.groupby("phase_index").size().items()}))
