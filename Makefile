# twinflow — the two commands a fresh machine needs:
#   make demo   install into .venv, build the demo twin, run every pipeline, print what was made
#   make test   install into .venv and run the test suite (what CI runs)
SHELL := /bin/bash
PYTHON ?= python3
VENV ?= .venv
PY := $(VENV)/bin/python
INSTALLED := $(VENV)/.installed
DEMO_MEDIA := demo/media/talk.mp4

.PHONY: venv demo demo-media report test test-fast lint format bench-plan clean

$(INSTALLED): pyproject.toml constraints.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	# The local CPU wheel first, so that nothing pulls another torch build.
	$(PY) -m pip install -q torch==2.13.0
	$(PY) -m pip install -q -c constraints.txt -e ".[dev]"
	touch $@

venv: $(INSTALLED)

$(DEMO_MEDIA): | $(INSTALLED)
	$(PY) -m twinflow.demo --out demo/media

demo-media: $(DEMO_MEDIA)

# Model jobs at once (profiles/local's `gpu` resource): one per GPU; on a CPU-only machine 2, since
# the demo's tiny models train on one thread each (serialising them left a core idle for most of
# the run). The profile itself keeps 1 on a CPU for larger presets, to bound their memory.
# --resources replaces the profile's list, so its memory limit is repeated here.
MODEL_JOBS ?= $(shell $(PY) -c "import torch; print(torch.cuda.device_count() or 2)")

# --keep-going: one pipeline's failure does not stop the others; the summary then lists every
# metric against its baselines and each render, FAILED with its log where it was not produced,
# and the target fails if Snakemake or the summary did. The HTML report (results/report/) is the
# last job of a complete run; when a job failed, its rule cannot run, so it is written here
# directly from what was produced (failed renders shown with their logs).
demo: $(INSTALLED) $(DEMO_MEDIA)
	status=0; $(VENV)/bin/snakemake --profile profiles/local --keep-going \
	  --resources gpu=$(MODEL_JOBS) mem_mb=16000 || status=$$?; \
	if [ $$status -ne 0 ]; then $(PY) -m twinflow.report || true; fi; \
	$(PY) -m twinflow.summary || status=1; exit $$status

# The HTML report of whatever the run has produced so far (README: Report).
report: $(INSTALLED)
	$(PY) -m twinflow.report

# Linting parses the Snakefile, which validates the default (demo) sheets: build their media first.
lint: $(INSTALLED) $(DEMO_MEDIA)
	$(VENV)/bin/ruff check workflow tests
	$(VENV)/bin/ruff format --check workflow tests
	$(VENV)/bin/snakefmt --check Snakefile workflow/rules
	$(VENV)/bin/snakemake --lint

test: $(INSTALLED) lint
	$(PY) -m pytest

format: $(INSTALLED)
	$(VENV)/bin/ruff format workflow tests
	$(VENV)/bin/ruff check --fix workflow tests
	$(VENV)/bin/snakefmt Snakefile workflow/rules

bench-plan: $(INSTALLED)
	$(PY) -m tests.bench.plan --twins 10 100 1000

clean:
	rm -rf results logs benchmarks .snakemake demo

# Animate acceptance (not a test): tiny MRAA trained on ../shared/data clips for at most 15 min
# of wall-clock on the CPU, evaluated against the copy-the-source baseline; report in the workdir.
.PHONY: bench-animate
bench-animate: $(INSTALLED)
	$(PY) -m twinflow.animate.acceptance --minutes 15

# SLURM (root, Debian): start a single-node test cluster (tests/slurm/cluster.sh; installs SLURM
# if missing), run tests/slurm through a profile derived from profiles/slurm, stop the cluster.
.PHONY: test-slurm
test-slurm: $(INSTALLED)
	TWINFLOW_SLURM_TESTS=1 $(PY) -m pytest tests/slurm -v --durations=0

# Perception benchmark (not a test): frames per second of the whole perception stage on one CPU
# core, beside a decode-only baseline and face track + matte together (target >= 30 fps).
# VIDEO: a 512x512 25 fps video (a normalised results/{twin}/media/video.mp4, or this real clip).
.PHONY: bench-perception
bench-perception: $(INSTALLED)
	$(PY) -m twinflow.perception.bench $(or $(VIDEO),../shared/data/talk_d12.mp4) --cores 1

# nerf acceptance: tiny preset on a real talking clip, 15 minutes of training on this machine's
# CPUs; prints val PSNR / SSIM / LMD against the audio-ignoring baseline (twinflow.nerf.acceptance).
.PHONY: bench-nerf
bench-nerf: $(INSTALLED)
	$(PY) -m twinflow.nerf.acceptance --video ../shared/data/talk_d6.mp4

# Mocap acceptance (not a test): the full-body and half-body clips of ../shared/data through
# normalise, perception and the anny fit on the CPU; reprojection error (% of person height),
# jitter against the raw detections and time per frame, in the workdir's acceptance.json.
.PHONY: bench-mocap
bench-mocap: $(INSTALLED)
	$(PY) -m twinflow.mocap.acceptance

# Anchor acceptance (not a test): tiny preset on ../shared/data/halfbody_s18.mp4 on the CPU
# (normalise, perception, mocap fit, mesh renders, body and head training of at most 20 minutes
# each, held-out evaluation); PSNR and pose agreement against the copy-the-reference baseline in
# build/anchor_acceptance/acceptance.json (twinflow.anchor.acceptance). On a GPU machine,
# `python -m twinflow.anchor.gpu_bench` times a 15-second video at the paper's sizes.
.PHONY: bench-anchor
bench-anchor: $(INSTALLED)
	$(PY) -m twinflow.anchor.acceptance --work build/anchor_acceptance

# Meshhead acceptance (not a test): tiny audio-to-mesh and warp trained on
# ../shared/data/talk_d6.mp4 for at most 15 min each on the CPU, against the static and ridge
# baselines; report in build/meshhead_acceptance/report.json.
.PHONY: bench-meshhead
bench-meshhead: $(INSTALLED)
	$(PY) -m twinflow.meshhead.acceptance --minutes 15 --workdir build/meshhead_acceptance
