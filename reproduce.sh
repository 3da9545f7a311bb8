#!/usr/bin/env bash
# The main job: set up .venv if needed, pick a profile, run the pipeline's stages with DVC.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$root"

# Stages that exist so far, in pipeline order (dvc.yaml defines each once per profile).
STAGES=(tasks traces base train evaluate analyze report)

usage() {
  cat <<USAGE
Usage: ./reproduce.sh [--profile smoke|mini|paper] [--dry-run]

Runs the replication pipeline (stages so far: ${STAGES[*]}) for one profile with
'dvc repro', writing under artifacts/<profile>/. Finished stages are skipped, so an
interrupted run resumes where it stopped.

  --profile P   smoke (seconds, CI), mini (CPU miniature replication), paper (the
                paper's settings). Default: paper when a CUDA GPU is present, else mini.
  --dry-run     print the stages and what changed for each; run nothing.
  -h, --help    this text.
USAGE
}

profile=""
dry_run=0
while [[ $# -gt 0 ]]; do
  case "$1" in
    --profile) [[ $# -ge 2 ]] || { echo "error: --profile needs a value (smoke, mini, paper)" >&2; exit 2; }; profile="$2"; shift 2 ;;
    --profile=*) profile="${1#*=}"; shift ;;
    --dry-run) dry_run=1; shift ;;
    -h|--help) usage; exit 0 ;;
    *) echo "error: unknown argument '$1' (see ./reproduce.sh --help)" >&2; exit 2 ;;
  esac
done

"$root/scripts/ensure-venv"
export PATH="$root/.venv/bin:$PATH"

if [[ -z "$profile" ]]; then
  if python -c 'import sys, torch; sys.exit(0 if torch.cuda.is_available() else 1)' 2>/dev/null; then
    profile=paper; reason="a CUDA GPU is available"
  else
    profile=mini; reason="no CUDA GPU found (the paper profile needs one); the CPU miniature runs instead"
  fi
else
  reason="chosen with --profile"
fi
case "$profile" in
  smoke|mini|paper) ;;
  *) echo "error: unknown profile '$profile'; expected one of: smoke, mini, paper" >&2; exit 2 ;;
esac
echo "Profile: $profile ($reason)"

targets=("tasks@$profile" "traces@$profile-persistent" "traces@$profile-stateless" "base@$profile"
         "train@$profile-persistent" "train@$profile-stateless" "evaluate@$profile" "analyze@$profile" "report@$profile")
if [[ $dry_run -eq 1 ]]; then
  # `dvc repro --dry` stops at the first stage whose inputs do not exist yet; status does not
  echo "Would run, in order: ${targets[*]}"
  dvc status "${targets[@]}"
  exit 0
fi
dvc repro "${targets[@]}"

echo
echo "Outputs: artifacts/$profile/"
python -m runtime_semantics tasks stats artifacts/"$profile"/tasks/*.jsonl
for runtime in persistent stateless; do
  echo "Teacher traces, $runtime runtime: artifacts/$profile/traces/$runtime/summary.json"
done
echo "Base model: artifacts/$profile/base/ (summary.json)"
for runtime in persistent stateless; do
  echo "Adapter trained on $runtime traces: artifacts/$profile/train/$runtime/ (summary.json)"
done
echo "Evaluation matrix: artifacts/$profile/evaluation/<cell>/ (one result per episode)"
results_dir=paper; [[ "$profile" != paper ]] && results_dir="paper/$profile"
echo "Results section: $results_dir/results.md (and results.tex, figures/)"
echo "Runs in MLflow: .venv/bin/mlflow ui --backend-store-uri sqlite:///artifacts/mlflow/mlflow.db"
