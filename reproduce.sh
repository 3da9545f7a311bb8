#!/usr/bin/env bash
# The main job: set up .venv if needed, pick a profile, check what it needs, run the pipeline's
# stages with DVC. `./reproduce.sh ui` serves the MLflow runs. See --help.
set -euo pipefail
root="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
cd "$root"

# The pipeline's stages in order; dvc.yaml defines each once per profile (tasks@mini, ...).
STAGES=(tasks traces base train precondition evaluate analyze report)

usage() {
  cat <<USAGE
Usage: ./reproduce.sh [--profile smoke|mini|paper] [--seeds N|all] [--from STAGE | --only STAGE] [--dry-run]
       ./reproduce.sh ui [--host HOST] [--port PORT]

Runs the replication pipeline for one profile with DVC, writing under artifacts/<profile>/
and the results section under paper/ (paper profile) or paper/<profile>/. Stages, in order:
  ${STAGES[*]}
Finished stages are skipped, so after an interruption the same command resumes where it
stopped (traces, train and evaluate also keep their finished episodes and checkpoints).

  --profile P     smoke (a few minutes on 2 CPU cores), mini (the CPU miniature replication),
                  paper (the paper's settings: Qwen3-8B, QLoRA, one GPU). Default: paper when
                  a CUDA GPU with enough memory and the model's weights are on this machine,
                  otherwise mini; the choice and the reason are printed.
  --seeds N|all   fine-tune and evaluate with the first N training seeds of params.yaml's
                  training_seeds (all: every one); default 1, the paper's seed. Stages the
                  seeds share (tasks, traces, base, the base model's cells) run once; the
                  analysis reports each seed, their spread and each claim per seed.
  --from STAGE    run STAGE and every stage after it, even if DVC finds them up to date.
  --only STAGE    run just STAGE (its inputs must exist), even if DVC finds it up to date.
  --dry-run       print the checks, the dvc commands and what changed; run nothing.
  -h, --help      this text.

  ui              serve the MLflow tracking store (artifacts/mlflow/) at http://localhost:5000
                  (--port to change it, --host 0.0.0.0 inside a container); Ctrl-C stops it.

Before any work, a preflight lists what the profile needs and lacks (GPU, VRAM, model weights,
teacher API key or published traces, disk) and how to supply it. The environment (.venv) is
set up from requirements.lock on first use.
USAGE
}

venv="${RUNTIME_SEMANTICS_VENV:-$root/.venv}"  # scripts/ensure-venv makes it; the Docker image sets /opt/venv
if [[ "${1:-}" == "ui" ]]; then
  shift
  "$root/scripts/ensure-venv"
  exec "$venv/bin/python" -m runtime_semantics ui "$@"
fi

die() { echo "error: $1" >&2; exit 2; }
is_stage() { local s; for s in "${STAGES[@]}"; do [[ "$s" == "$1" ]] && return 0; done; return 1; }

profile=""
mode=all
stage=""
dry_run=0
seeds_arg=1
while [[ $# -gt 0 ]]; do
  case "$1" in
    --profile) [[ $# -ge 2 ]] || die "--profile needs a value (smoke, mini, paper)"; profile="$2"; shift 2 ;;
    --profile=*) profile="${1#*=}"; shift ;;
    --from|--only)
      [[ $# -ge 2 ]] || die "$1 needs a stage (${STAGES[*]})"
      [[ "$mode" == all ]] || die "give one of --from and --only"
      mode="${1#--}"; stage="$2"; shift 2 ;;
    --from=*|--only=*)
      [[ "$mode" == all ]] || die "give one of --from and --only"
      mode="${1%%=*}"; mode="${mode#--}"; stage="${1#*=}"; shift ;;
    --seeds) [[ $# -ge 2 ]] || die "--seeds needs a number or 'all'"; seeds_arg="$2"; shift 2 ;;
    --seeds=*) seeds_arg="${1#*=}"; shift ;;
    --dry-run) dry_run=1; shift ;;
    -h|--help) usage; exit 0 ;;
    *) die "unknown argument '$1' (see ./reproduce.sh --help)" ;;
  esac
done
if [[ -n "$stage" ]] && ! is_stage "$stage"; then
  die "unknown stage '$stage'; expected one of: ${STAGES[*]}"
fi
case "$profile" in
  ""|smoke|mini|paper) ;;
  *) die "unknown profile '$profile'; expected one of: smoke, mini, paper" ;;
esac

[[ "$seeds_arg" == all || "$seeds_arg" =~ ^[1-9][0-9]*$ ]] || die "--seeds: expected a positive number or 'all', got '$seeds_arg'"

"$root/scripts/ensure-venv"
export PATH="$venv/bin:$PATH"

# the training seeds to run: the first N of params.yaml's training_seeds
all_seeds="$(python -c 'import sys, yaml; print(" ".join(str(s) for s in yaml.safe_load(open("params.yaml"))["training_seeds"]))')" \
  || die "params.yaml: could not read training_seeds"
read -r -a all_seeds <<<"$all_seeds"
if [[ "$seeds_arg" == all ]]; then
  seeds=("${all_seeds[@]}")
elif (( seeds_arg > ${#all_seeds[@]} )); then
  die "--seeds $seeds_arg: params.yaml's training_seeds has ${#all_seeds[@]} (${all_seeds[*]}); add seeds there first"
else
  seeds=("${all_seeds[@]:0:seeds_arg}")
fi

if [[ -z "$profile" ]]; then
  # paper needs a CUDA GPU with enough memory and the model's weights on disk (checked offline)
  set +e
  lacking="$(python -m runtime_semantics preflight --profile paper --quiet --check gpu --check vram --check model 2>&1)"
  status=$?
  set -e
  if [[ $status -eq 0 ]]; then
    profile=paper; reason="a CUDA GPU with enough memory and the paper model's weights are available"
  elif [[ $status -eq 3 ]]; then
    profile=mini
    reason="the paper profile needs what this machine lacks: $(echo "$lacking" | paste -sd ';' | sed 's/;/; /g'); the CPU miniature runs instead"
  else
    echo "$lacking" >&2; exit "$status"
  fi
else
  reason="chosen with --profile"
fi
echo "Profile: $profile ($reason)"
echo "Training seeds: ${seeds[*]} (of ${all_seeds[*]}; --seeds all runs every one)"

targets_of() {  # the DVC targets of one stage for the profile and the chosen seeds
  local s
  case "$1" in
    traces) echo "$1@$profile-persistent $1@$profile-stateless" ;;
    train) for s in "${seeds[@]}"; do echo "$1@$profile-persistent-$s $1@$profile-stateless-$s"; done ;;
    precondition) for s in "${seeds[@]}"; do echo "$1@$profile-$s"; done ;;
    evaluate) echo "evaluate-base@$profile"; for s in "${seeds[@]}"; do echo "$1@$profile-$s"; done ;;
    *) echo "$1@$profile" ;;
  esac
}

# Rough durations, printed before a long stage that is about to run, rounded from the measured
# times in docs/timings.md (the one record of stage times; "measured" means on the project's
# 2-core machine). Update that file first when a measurement comes in, then these.
estimate_of() {
  case "$profile/$1" in
    smoke/evaluate) echo "about 30 s (measured: 12 cells x 4 episodes on 2 cores)" ;;
    mini/base) echo "seconds: checks the shipped base (models/mini-base) against its manifest and copies it" ;;
    mini/train) echo "about 6-15 min per runtime and training seed on 2 cores (measured: docs/timings.md)" ;;
    mini/evaluate) echo "about 5-12 min for the base model's 4 cells and 8-10 min per seed's 8 cells on 2 cores (measured: 40 episodes per cell, one pool of 40 per model)" ;;
    paper/traces) echo "hours: 1,000 teacher episodes per runtime through the API (and its costs)" ;;
    paper/train) echo "several hours per runtime on one 24 GB GPU (estimate)" ;;
    paper/evaluate) echo "a few hours with vLLM on one GPU (estimate: 12 cells x 100 episodes)" ;;
    *) echo "" ;;
  esac
}

# The plan: one dvc command per target, in pipeline order.
plan_targets=()
plan_stages=()
force=()
started=0
for s in "${STAGES[@]}"; do
  [[ "$mode" == from && "$s" == "$stage" ]] && started=1
  if [[ "$mode" == all || ( "$mode" == from && $started -eq 1 ) || ( "$mode" == only && "$s" == "$stage" ) ]]; then
    for t in $(targets_of "$s"); do plan_targets+=("$t"); plan_stages+=("$s"); done
  fi
done
# Each target runs on its own (--single-item): the ones before it in the plan already ran.
# --from and --only force their stages; otherwise DVC skips what is up to date.
[[ "$mode" != all ]] && force=(--force)

echo "Preflight ($profile):"
set +e
python -m runtime_semantics preflight --profile "$profile"
preflight_status=$?
set -e
# 3: something is missing (a dry run goes on to show the plan); anything else: an error
if [[ $preflight_status -ne 0 && ( $preflight_status -ne 3 || $dry_run -eq 0 ) ]]; then
  if [[ $preflight_status -eq 3 ]]; then
    echo "Stopped before any work: supply what is missing above, then run this again." >&2
    [[ "$profile" != mini ]] && echo "The CPU miniature needs none of it: ./reproduce.sh --profile mini" >&2
  fi
  exit "$preflight_status"
fi

resume_hint="./reproduce.sh --profile $profile --seeds ${#seeds[@]}"
echo "Plan: ${#plan_targets[@]} DVC stage(s):"
for t in "${plan_targets[@]}"; do echo "  dvc repro --single-item ${force[*]:+${force[*]} }$t"; done
if [[ " ${plan_stages[*]} " == *" train "* ]]; then
  # the train stage's processes come from params.yaml (<profile>.train.processes); DVC runs scripts/run-stage,
  # which starts more than one under accelerate launch (configs/accelerate/ddp.yaml; docs/scaling.md)
  echo "Train stage launched as (scripts/run-stage, from $profile.train.processes in params.yaml):"
  echo "  $(python -m runtime_semantics.launch command train run --profile "$profile" --runtime persistent --seed "${seeds[0]}" 2>&1)"
fi
if [[ $dry_run -eq 1 ]]; then
  # `dvc repro --dry` stops at the first stage whose inputs do not exist yet; status does not
  echo "What changed since the last run (dvc status):"
  dvc status "${plan_targets[@]}" || echo "(dvc status could not run: see its message above)"
  exit 0
fi

current=""
on_interrupt() {
  echo >&2
  echo "Interrupted${current:+ during $current}. Run '$resume_hint' to resume: finished stages are skipped," >&2
  echo "and traces, train and evaluate continue from their saved episodes and checkpoints." >&2
  exit 130
}
trap on_interrupt INT TERM

n=${#plan_targets[@]}
for i in "${!plan_targets[@]}"; do
  current="${plan_targets[$i]}"
  estimate="$(estimate_of "${plan_stages[$i]}")"
  # print the estimate only when the stage will really run (dvc status -q: 0 = up to date)
  if [[ -n "$estimate" ]] && { [[ ${#force[@]} -gt 0 ]] || ! dvc status -q "$current" >/dev/null 2>&1; }; then
    echo "==> [$((i + 1))/$n] $current: $estimate"
  else
    echo "==> [$((i + 1))/$n] $current"
  fi
  if ! dvc repro --single-item "${force[@]}" "$current"; then
    echo >&2
    echo "Stopped: $current failed (its error is above). Fix it, then '$resume_hint' resumes from there." >&2
    exit 1
  fi
done
trap - INT TERM

results_dir=paper; [[ "$profile" != paper ]] && results_dir="paper/$profile"
echo
echo "Done ($profile). Outputs under artifacts/$profile/:"
echo "  tasks/  traces/{persistent,stateless}/  base/  train/seed-<S>/{persistent,stateless}/  precondition/seed-<S>/"
echo "  evaluation/{base,seed-<S>}/  analysis/   (training seeds: ${seeds[*]})"
if (( ${#seeds[@]} < ${#all_seeds[@]} )); then
  echo "Every training seed (${all_seeds[*]}), with the spread between them: ./reproduce.sh --profile $profile --seeds all"
fi
echo "Results section: $results_dir/results.md (and results.tex, figures/)"
echo "Every run in MLflow: ./reproduce.sh ui   (then open http://localhost:5000)"
