"""FastCaloGAN training step: ours against a straightforward Keras WGAN-GP step, same run.

Measures, interleaved (the machine is shared and noisy, so ratios are taken per round):

- ms per iteration (5 critic steps + 1 generator step, batch 128) for photons (368 voxels)
  and pions (533): a plain Keras ``tf.function`` step (nested GradientTape for the penalty,
  Keras Adam) against ``fastcalogan.step.WganTrainer`` (closed-form critic gradients), in
  float32 (also with XLA) and with bfloat16 matrix-product operands; and the same Keras
  step laid out as the public FastCaloGAN training code lays out its own
  (:func:`published_baseline`);
- the achieved GFLOP/s of our step (matrix-product FLOPs it performs, counted analytically)
  against this machine's matmul rate at 128 x N x N in the same precision;
- peak memory (max RSS of a fresh process training 50 iterations; a pack of 10 GANs in
  either layout, 10 iterations);
- packed training of K GANs, photons and pions, in both layouts of a pack (one batched
  model; each GAN's own graph side by side): each packed GAN against the same GAN trained
  alone (largest difference over parameters and Adam slots: 0 when bit for bit equal; and
  over one critic step's gradients), aggregate iterations/s against K single runs in a row.

Every contender runs under the job's thread settings (``fastcalogan.train.configure_threads``):
XLA, which wants other ones, in a child process, and both Keras steps once more in children
left at TensorFlow's default threads (what a script of one's own would get); the children's
rounds are interleaved with the others.

Usage: ``PYTHONPATH=jobs/fastcalogan python benchmarks/fastcalogan_bench.py [--rounds 5]``
(needs ``keras`` for the baseline, which comes with tensorflow).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from typing import Any

import numpy as np
import tensorflow as tf
from fastcalogan import hparams, model
from fastcalogan.step import LAYOUTS, InterleavedTrainer, WganTrainer, build_trainer
from fastcalogan.train import CHUNK, configure_threads

HP = hparams.PUBLISHED  # the published architecture (ReLU generator, as the Keras steps)
B = HP.batch_size
N_EVENTS = 5000
MEMORY_PACK = 10  # GANs in the packs whose peak memory is measured


def _data(n_voxels: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    x = rng.exponential(0.01, (N_EVENTS, n_voxels)).astype(np.float32)
    y = rng.uniform(0, 1, (N_EVENTS, 1)).astype(np.float32)
    return x, y


def step_flops(n: int) -> float:
    """Matrix-product FLOPs of one of our iterations (see fastcalogan.model for the terms)."""
    unit = 2.0 * B * n * n
    gen = 2.0 * B * sum(i * o for i, o in model.generator_sizes(HP, n))
    per_critic_step = 26 * unit  # 8 forward, 6 input-gradient, 1 grad_x, 2 GP reverse, 9 dW
    gen_step = 6 * unit + 3 * gen  # critic forward + input gradient, generator fwd + bwd
    return HP.critic_steps * (per_critic_step + gen) + gen_step


def _keras_gan(n: int) -> tuple[Any, Any, Any, Any]:
    """Generator, critic and their Adam optimisers as Keras layers (the same architecture)."""
    import keras
    from keras import layers

    z_in, c_in = keras.Input((HP.latent_dim,)), keras.Input((1,))
    h = layers.Concatenate()([z_in, c_in])
    for units in (*HP.generator, n):
        h = layers.Dense(units, activation="relu", kernel_initializer="he_uniform")(h)
    gen = keras.Model([z_in, c_in], h)
    x_in = keras.Input((n + 1,))
    h = x_in
    for _ in range(len(HP.critic)):
        h = layers.Dense(n, activation="relu", kernel_initializer="he_uniform")(h)
    crit = keras.Model(x_in, layers.Dense(1, kernel_initializer="he_uniform")(h))
    opt_g = keras.optimizers.Adam(HP.lr_generator, beta_1=HP.beta1)
    opt_d = keras.optimizers.Adam(HP.lr_generator, beta_1=HP.beta1)
    return gen, crit, opt_g, opt_d


def _keras_critic_loss(gen: Any, crit: Any, real: tf.Tensor, label: tf.Tensor) -> Any:
    """WGAN-GP critic loss of one batch (penalty by a nested GradientTape), and D(fake)."""
    noise = tf.random.normal([B, HP.latent_dim], hparams.NOISE_MEAN, hparams.NOISE_STD)
    fake = gen([noise, label])
    alpha = tf.random.uniform([B, 1])
    inter = alpha * real + (1 - alpha) * fake
    with tf.GradientTape() as gp_tape:
        gp_tape.watch(inter)
        d_inter = crit(tf.concat([inter, label], 1))
    grad = gp_tape.gradient(d_inter, inter)
    gp = HP.gp_lambda * tf.reduce_mean((tf.norm(grad, axis=1) - 1.0) ** 2)
    d_fake = crit(tf.concat([fake, label], 1))
    loss = tf.reduce_mean(d_fake) - tf.reduce_mean(crit(tf.concat([real, label], 1))) + gp
    return loss, d_fake


def _critic_update(gen: Any, crit: Any, opt_d: Any, real: tf.Tensor, label: tf.Tensor) -> Any:
    """One critic step of a Keras baseline: Adam on the critic loss; returns the loss."""
    with tf.GradientTape() as tape:
        d_loss, _ = _keras_critic_loss(gen, crit, real, label)
    grads = tape.gradient(d_loss, crit.trainable_variables)
    opt_d.apply_gradients(zip(grads, crit.trainable_variables, strict=True))
    return d_loss


def keras_baseline(n: int, x: np.ndarray, y: np.ndarray) -> Any:
    """A straightforward Keras WGAN-GP iteration of the same architecture, as a tf.function.

    Lean: batches drawn inside the graph, the critic steps unrolled, and the generator step
    scores only a fresh fake batch.
    """
    gen, crit, opt_g, opt_d = _keras_gan(n)
    xs, ys = tf.constant(x), tf.constant(y)

    @tf.function
    def step() -> tf.Tensor:
        for _ in range(HP.critic_steps):
            idx = tf.random.uniform([B], 0, N_EVENTS, dtype=tf.int32)
            label = tf.gather(ys, idx)
            d_loss = _critic_update(gen, crit, opt_d, tf.gather(xs, idx), label)
        noise = tf.random.normal([B, HP.latent_dim], hparams.NOISE_MEAN, hparams.NOISE_STD)
        with tf.GradientTape() as tape:
            g_loss = -tf.reduce_mean(crit(tf.concat([gen([noise, label]), label], 1)))
        grads = tape.gradient(g_loss, gen.trainable_variables)
        opt_g.apply_gradients(zip(grads, gen.trainable_variables, strict=True))
        return d_loss

    return step


def published_baseline(n: int, x: np.ndarray, y: np.ndarray) -> Any:
    """``run(k)``: k iterations of a Keras step laid out as the public FastCaloGAN training
    code lays out its own (BoloGAN's ``conditional_wgangp.py``, TF 2).

    A shuffled ``tf.data`` pipeline hands over the 5 critic batches of an iteration; one
    ``tf.function`` per iteration runs the critic steps as a graph loop (``tf.range``), and
    its generator step evaluates the whole critic loss, penalty included, on the last batch
    to take D(fake) from it; the losses come back to Python after every iteration.
    """
    gen, crit, opt_g, opt_d = _keras_gan(n)
    steps = HP.critic_steps
    batches = iter(
        tf.data.Dataset.from_tensor_slices((x, y))
        .shuffle(len(x))
        .repeat()
        .batch(steps * B, drop_remainder=True)
        .prefetch(2)
    )

    @tf.function
    def iteration(xs: tf.Tensor, ys: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        for i in tf.range(steps):
            _critic_update(gen, crit, opt_d, xs[i], ys[i])
        with tf.GradientTape() as tape:
            d_loss, d_fake = _keras_critic_loss(gen, crit, xs[steps - 1], ys[steps - 1])
            g_loss = -tf.reduce_mean(d_fake)
        grads = tape.gradient(g_loss, gen.trainable_variables)
        opt_g.apply_gradients(zip(grads, gen.trainable_variables, strict=True))
        return d_loss, g_loss

    def run(k: int) -> None:
        for _ in range(k):
            xb, yb = next(batches)
            d_loss, g_loss = iteration(tf.reshape(xb, (steps, B, n)), tf.reshape(yb, (steps, B, 1)))
            d_loss.numpy(), g_loss.numpy()

    return run


def matmul_rate(n: int, reps: int = 40, dtype: tf.DType = tf.float32) -> float:
    """GFLOP/s of dependent 128 x n x n products (no common subexpressions) in ``dtype``."""
    a = tf.cast(tf.random.uniform((B, n)), dtype)
    w = tf.cast(tf.random.uniform((n, n)) * (1.0 / n), dtype)

    @tf.function
    def chain(a: tf.Tensor) -> tf.Tensor:
        for _ in range(reps):
            a = tf.matmul(a, w)
        return a

    chain(a).numpy()
    t0 = time.perf_counter()
    chain(a).numpy()
    return 2.0 * B * n * n * reps / (time.perf_counter() - t0) / 1e9


def _time(fn: Any, iterations: int) -> float:
    t0 = time.perf_counter()
    fn(iterations)
    return (time.perf_counter() - t0) / iterations * 1e3


def compare(n: int, rounds: int, iterations: int) -> dict[str, Any]:
    """Interleaved rounds, in a rotating order: baseline, ours (graph, XLA, bfloat16) and
    the matmul rates.

    Reported: medians and the median of per-round ratios, plus the ratio of the minima
    (each minimum is the least disturbed round of that contender on a shared machine).
    """
    x, y = _data(n, 0)
    run_base = _keras_runner(n, x, y)
    ours = WganTrainer([(x, y)], [1])
    ours_bf16 = WganTrainer([(x, y)], [1], precision="bfloat16")
    reference = WganTrainer([(x, y)], [1], fast_critic="off")  # autodiff critic gradients
    children = {which: _RoundChild(which, n) for which in ("keras", "published", "xla")}

    runners = {
        "keras": run_base,
        "keras_default_threads": children["keras"].run,
        "published": published_baseline(n, x, y),
        "published_default_threads": children["published"].run,
        "ours": _ours_runner(ours),
        "ours_xla": children["xla"].run,
        "ours_bf16": _ours_runner(ours_bf16),
        "reference": _ours_runner(reference),
    }
    for fn in runners.values():
        fn(10)
    rows: dict[str, list[float]] = {
        k: [] for k in [*runners, "matmul_gflops", "matmul_bf16_gflops"]
    }
    order = list(runners)
    for r in range(rounds):
        # Whatever runs right after the Keras step is a few percent slower: rotate the order.
        for key in order[r % len(order) :] + order[: r % len(order)]:
            rows[key].append(_time(runners[key], iterations))
        rows["matmul_gflops"].append(matmul_rate(n))
        rows["matmul_bf16_gflops"].append(matmul_rate(n, dtype=tf.bfloat16))
    for child in children.values():
        child.close()
    flops = step_flops(n)

    def against_ours(baseline: str) -> float:
        return statistics.median(b / o for b, o in zip(rows[baseline], rows["ours"], strict=True))

    speedup_xla = [b / o for b, o in zip(rows["keras"], rows["ours_xla"], strict=True)]
    speedup_bf16 = [b / o for b, o in zip(rows["keras"], rows["ours_bf16"], strict=True)]
    eff_bf16 = [
        flops / (o * 1e-3) / 1e9 / m
        for o, m in zip(rows["ours_bf16"], rows["matmul_bf16_gflops"], strict=True)
    ]
    eff = [
        flops / (o * 1e-3) / 1e9 / m
        for o, m in zip(rows["ours"], rows["matmul_gflops"], strict=True)
    ]
    med = statistics.median
    return {
        "voxels": n,
        "rounds": rounds,
        "iterations_per_round": iterations,
        "keras_ms": med(rows["keras"]),
        "ours_ms": med(rows["ours"]),
        "ours_xla_ms": med(rows["ours_xla"]),
        "speedup": against_ours("keras"),
        "reference_ms": med(rows["reference"]),
        "speedup_vs_reference": against_ours("reference"),
        "keras_default_threads_ms": med(rows["keras_default_threads"]),
        "speedup_vs_default_threads": against_ours("keras_default_threads"),
        "published_ms": med(rows["published"]),
        "speedup_vs_published": against_ours("published"),
        "published_default_threads_ms": med(rows["published_default_threads"]),
        "speedup_vs_published_default_threads": against_ours("published_default_threads"),
        "speedup_of_minima": min(rows["keras"]) / min(rows["ours"]),
        "ours_min_ms": min(rows["ours"]),
        "keras_min_ms": min(rows["keras"]),
        "efficiency_best": flops / (min(rows["ours"]) * 1e-3) / 1e9 / max(rows["matmul_gflops"]),
        "speedup_xla": med(speedup_xla),
        "ours_bf16_ms": med(rows["ours_bf16"]),
        "speedup_bf16": med(speedup_bf16),
        "ours_bf16_gflops": flops / (med(rows["ours_bf16"]) * 1e-3) / 1e9,
        "matmul_bf16_gflops": med(rows["matmul_bf16_gflops"]),
        "efficiency_bf16": med(eff_bf16),
        "gflop_per_iteration": flops / 1e9,
        "ours_gflops": flops / (med(rows["ours"]) * 1e-3) / 1e9,
        "matmul_gflops": med(rows["matmul_gflops"]),
        "efficiency": med(eff),
        "raw": rows,
    }


Trainer = WganTrainer | InterleavedTrainer


def _max_diff(single: WganTrainer, packed: Trainer, i: int) -> float:
    """Largest absolute difference over every parameter and Adam slot of packed GAN ``i``."""
    packed_state = packed.state()
    return max(
        float(np.abs(value - packed_state[name][i]).max())
        for name, value in single.state().items()
        if value.ndim
    )


def _start_fresh(trainer: Trainer, n: int) -> None:
    """Back to the initial weights, zero Adam slots and counters (after compiling)."""
    state = {name: np.zeros_like(v) for name, v in trainer.state().items()}
    per = [model.initial_parameters(HP, n, key) for key in trainer.keys]
    state.update(model.stack_parameters(per) if trainer.packed else per[0])
    trainer.load_state(state)


def step_gradient_diff(k: int, n: int) -> float:
    """One critic step of K packed GANs against each alone, same inputs: the largest
    difference of a gradient relative to that gradient's largest value."""
    rng = np.random.default_rng(1)
    per = [model.initial_parameters(HP, n, 1000 + i) for i in range(k)]
    shapes = [(k, B, n), (k, B, n), (k, B, 1), (k, B, 1)]
    inputs = [tf.constant(rng.uniform(0, 0.02, s), tf.float32) for s in shapes]
    grads = tf.function(model.critic_gradients, autograph=False)

    def critic_params(values: dict[str, np.ndarray]) -> dict[str, tf.Tensor]:
        return {name: tf.constant(v) for name, v in values.items() if name.startswith("d_")}

    packed, _ = grads(critic_params(model.stack_parameters(per)), *inputs, HP.gp_lambda)
    worst = 0.0
    for i in range(k):
        single, _ = grads(critic_params(per[i]), *[x[i] for x in inputs], HP.gp_lambda)
        for name, g in single.items():
            scale = float(np.abs(g.numpy()).max()) or 1.0
            worst = max(worst, float(np.abs(packed[name][i].numpy() - g.numpy()).max()) / scale)
    return worst


def packed_check(k: int, n: int, iterations: int, rounds: int = 4) -> dict[str, Any]:
    """K GANs packed, in both layouts, against the same K trained one after another.

    The three contenders take turns (order rotating) for ``rounds`` chunks that add up to
    ``iterations``. Then every packed GAN is compared with its single run over all
    parameters and Adam slots (bit for bit: 0.0; batched, that needs N a multiple of 16, see
    ``fastcalogan.model``), and the batched layout over one critic step's gradients.
    """
    data = [_data(n, 100 + i) for i in range(k)]
    keys = [1000 + i for i in range(k)]
    singles = [build_trainer([data[i]], [keys[i]]) for i in range(k)]
    packs = {layout: build_trainer(data, keys, layout) for layout in LAYOUTS}
    trainers: list[Trainer] = [*singles, *packs.values()]
    for trainer in trainers:
        trainer.train(1)  # compile
        _start_fresh(trainer, n)
    runs: dict[str, Any] = {
        "sequential": lambda its: [single.train(its) for single in singles],
        **{layout: pack.train for layout, pack in packs.items()},
    }
    seconds = dict.fromkeys(runs, 0.0)
    chunks = [iterations // rounds + (r < iterations % rounds) for r in range(rounds)]
    for r, its in enumerate(chunks):
        names = list(runs)
        for name in names[r % len(names) :] + names[: r % len(names)]:
            t0 = time.perf_counter()
            runs[name](its)
            seconds[name] += time.perf_counter() - t0
    out: dict[str, Any] = {"k": k, "voxels": n, "iterations": iterations}
    out["sequential_it_per_s"] = k * iterations / seconds["sequential"]
    for layout, pack in packs.items():
        out[layout] = {
            "max_abs_diff_parameters_and_slots": max(
                _max_diff(single, pack, i) for i, single in enumerate(singles)
            ),
            "it_per_s": k * iterations / seconds[layout],
            "vs_sequential": seconds["sequential"] / seconds[layout],
        }
    out["batched"]["max_rel_diff_one_step_gradients"] = step_gradient_diff(3, n)
    return out


def peak_memory(n: int, which: str) -> float:
    """Max RSS (MiB) of a fresh process that trains 50 iterations (a pack of
    ``MEMORY_PACK`` GANs: 10) with the Keras step, ours, or a pack in a layout."""
    out = subprocess.run(
        [sys.executable, __file__, "--memory", which, str(n)],
        capture_output=True,
        text=True,
        check=True,
        env=os.environ.copy(),
    )
    return float(out.stdout.strip().splitlines()[-1])


def _ours_runner(trainer: WganTrainer) -> Any:
    """``run(k)``: k iterations of our step, in calls of ``CHUNK`` iterations as the task
    makes them (the last call takes the rest)."""

    def run(k: int) -> None:
        for start in range(0, k, CHUNK):
            trainer.train(min(CHUNK, k - start))

    return run


def _keras_runner(n: int, x: np.ndarray, y: np.ndarray) -> Any:
    """``run(k)``: k iterations of the Keras baseline, then wait for the result."""
    step = keras_baseline(n, x, y)

    def run(k: int) -> None:
        for _ in range(k):
            out = step()
        out.numpy()

    return run


class _RoundChild:
    """A contender that needs other thread settings than this process, in its own process.

    ``keras`` and ``published``: the two Keras steps at TensorFlow's default threads (what
    a script of one's own gets); ``xla``: our step compiled with XLA, at the job's settings
    for ``jit``.
    """

    def __init__(self, which: str, n: int) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, __file__, "--child", which, str(n)],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            env=os.environ.copy(),
        )

    def run(self, k: int) -> None:
        """k iterations in the child; returns when they are done."""
        assert self.proc.stdin is not None and self.proc.stdout is not None
        self.proc.stdin.write(f"{k}\n")
        self.proc.stdin.flush()
        if not self.proc.stdout.readline():
            raise RuntimeError(f"benchmark child exited with {self.proc.wait()}")

    def close(self) -> None:
        assert self.proc.stdin is not None
        self.proc.stdin.close()
        self.proc.wait()


def _child(which: str, n: int) -> None:
    """Serve :class:`_RoundChild`: one line "k" on stdin per round, one line back when done."""
    x, y = _data(n, 0)
    if which == "keras":
        run = _keras_runner(n, x, y)
    elif which == "published":
        run = published_baseline(n, x, y)
    else:
        configure_threads(jit=True)
        run = _ours_runner(WganTrainer([(x, y)], [1], jit=True))

    for line in sys.stdin:
        run(int(line))
        print("done", flush=True)


def _memory_child(which: str, n: int) -> None:
    x, y = _data(n, 0)
    if which == "keras":
        step = keras_baseline(n, x, y)
        for _ in range(50):
            step()
    elif which in LAYOUTS:  # a pack of MEMORY_PACK GANs, 10 iterations
        data = [_data(n, 100 + i) for i in range(MEMORY_PACK)]
        build_trainer(data, list(range(MEMORY_PACK)), which).train(10)
    else:
        WganTrainer([(x, y)], [1]).train(50)
    # ru_maxrss survives exec (it would report the parent's size): read the high-water mark.
    with open("/proc/self/status") as f:
        hwm = next(line for line in f if line.startswith("VmHWM:"))
    print(int(hwm.split()[1]) / 1024.0)


def main() -> None:
    """Run every measurement and print a JSON report plus a markdown table."""
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--iterations", type=int, default=30)
    p.add_argument("--pack", type=int, default=10)
    p.add_argument("--pack-iterations", type=int, default=20)
    p.add_argument("--memory", nargs=2, metavar=("WHICH", "N"), help=argparse.SUPPRESS)
    p.add_argument("--child", nargs=2, metavar=("WHICH", "N"), help=argparse.SUPPRESS)
    p.add_argument("--json", help="also write the report here")
    p.add_argument("--step-only", action="store_true", help="skip the memory and pack runs")
    args = p.parse_args()
    if args.child:
        _child(args.child[0], int(args.child[1]))
        return
    configure_threads()  # the job's settings, for every contender (and memory children)
    if args.memory:
        _memory_child(args.memory[0], int(args.memory[1]))
        return
    report: dict[str, Any] = {"tensorflow": tf.__version__, "cpus": os.cpu_count()}
    report["step"] = [compare(n, args.rounds, args.iterations) for n in (368, 533)]
    if not args.step_only:
        report["memory_mib"] = {
            f"{w}_{n}": peak_memory(n, w) for n in (368, 533) for w in ("keras", "ours", *LAYOUTS)
        }
        report["packed"] = [packed_check(args.pack, n, args.pack_iterations) for n in (368, 533)]
    if args.json:
        with open(args.json, "w") as f:
            json.dump(report, f, indent=1)
    print(json.dumps({k: v for k, v in report.items() if k != "step"}, indent=1))
    print("\n| voxels | Keras ms/it | reference (autodiff) ms/it | fast ms/it | fast / reference |")
    print("|---|---|---|---|---|")
    for r in report["step"]:
        print(
            f"| {r['voxels']} | {r['keras_ms']:.1f} | {r['reference_ms']:.1f} | {r['ours_ms']:.1f}"
            f" | {r['speedup_vs_reference']:.2f}x |"
        )
    print(
        "\n| voxels | Keras ms/it | ours bfloat16 ms/it | speedup | GFLOP/s | bfloat16 matmul "
        "GFLOP/s | efficiency |"
    )
    print("|---|---|---|---|---|---|---|")
    for r in report["step"]:
        print(
            f"| {r['voxels']} | {r['keras_ms']:.1f} | {r['ours_bf16_ms']:.1f} "
            f"| {r['speedup_bf16']:.2f}x | {r['ours_bf16_gflops']:.0f} "
            f"| {r['matmul_bf16_gflops']:.0f} | {r['efficiency_bf16']:.0%} |"
        )
    print(
        "\n| voxels | Keras ms/it | ours ms/it | speedup | ours XLA ms/it | speedup XLA "
        "| GFLOP/it | ours GFLOP/s | matmul GFLOP/s | efficiency | min Keras / min ours "
        "| best efficiency |"
    )
    print("|---|---|---|---|---|---|---|---|---|---|---|---|")
    for r in report["step"]:
        print(
            f"| {r['voxels']} | {r['keras_ms']:.1f} | {r['ours_ms']:.1f} | {r['speedup']:.2f}x "
            f"| {r['ours_xla_ms']:.1f} | {r['speedup_xla']:.2f}x | {r['gflop_per_iteration']:.2f}"
            f" | {r['ours_gflops']:.0f} | {r['matmul_gflops']:.0f} | {r['efficiency']:.0%} "
            f"| {r['keras_min_ms']:.1f} / {r['ours_min_ms']:.1f} = {r['speedup_of_minima']:.2f}x "
            f"| {r['efficiency_best']:.0%} |"
        )
    print(
        "\n| voxels | K | sequential it/s | layout | packed it/s | vs sequential "
        "| max difference to single runs |"
    )
    print("|---|---|---|---|---|---|---|")
    for r in report.get("packed", []):
        for layout in LAYOUTS:
            print(
                f"| {r['voxels']} | {r['k']} | {r['sequential_it_per_s']:.1f} | {layout} "
                f"| {r[layout]['it_per_s']:.1f} | {r[layout]['vs_sequential']:.2f}x "
                f"| {r[layout]['max_abs_diff_parameters_and_slots']:.2g} |"
            )
    print(
        "\n| voxels | baseline | at the job's threads ms/it | speedup "
        "| at TensorFlow's default threads ms/it | speedup | ours ms/it |"
    )
    print("|---|---|---|---|---|---|---|")
    baselines = (  # name, then keys at the job's threads and at TensorFlow's defaults
        ("Keras step", "keras", "speedup", "keras_default_threads", "speedup_vs_default_threads"),
        (
            "published layout",
            "published",
            "speedup_vs_published",
            "published_default_threads",
            "speedup_vs_published_default_threads",
        ),
    )
    for r in report["step"]:
        for name, ms, ratio, ms_defaults, ratio_defaults in baselines:
            print(
                f"| {r['voxels']} | {name} | {r[ms + '_ms']:.1f} | {r[ratio]:.2f}x "
                f"| {r[ms_defaults + '_ms']:.1f} | {r[ratio_defaults]:.2f}x | {r['ours_ms']:.1f} |"
            )


if __name__ == "__main__":
    main()
