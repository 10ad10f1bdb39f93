# The k=5000 evaluations that `pyro-vae leaderboard results/default-vae results/vamp-iwae5 --k 5000`
# made at commit 02e9f28 (results/leaderboard/leaderboard.json), saved beside each run with the
# fingerprint of the weights they scored, so the next leaderboard reuses them.
import json
from pathlib import Path
from pyro_vae.checkpoint import weights_fingerprint
from pyro_vae.runs import load_run

rows = {row["run"]: row for row in json.loads(Path("results/leaderboard/leaderboard.json").read_text())}
for run_dir, row in rows.items():
    path = Path(run_dir) / "evaluate-k5000.json"
    saved = json.loads(path.read_text()) if path.exists() else {"run": run_dir, "k": 5000, "n_images": 10000}
    assert abs(saved.get("log_likelihood", row["log_likelihood"]) - row["log_likelihood"]) < 1e-6
    saved.update(elbo=row["elbo"], log_likelihood=row["log_likelihood"], log_likelihood_stderr=row["log_likelihood_se"],
                 active_units=row["active_units"], fid=row["fid"], seconds=row["evaluate_seconds"], seed=0,
                 weights_sha256=weights_fingerprint(load_run(run_dir, device="cpu").vae),
                 source="pyro-vae leaderboard results/default-vae results/vamp-iwae5 --k 5000 (commit 02e9f28)")
    path.write_text(json.dumps(saved) + "\n")
    print(path, saved["log_likelihood"], saved["weights_sha256"])
