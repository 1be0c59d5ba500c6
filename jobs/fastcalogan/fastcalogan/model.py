"""The conditional WGAN-GP of FastCaloGAN: parameters, forward passes and the critic's gradients.

The architecture comes from :class:`fastcalogan.hparams.HParams` (published defaults):

- generator: ``[noise(latent), label(1)] -> hidden widths -> N_voxels``, each layer
  ``act(BN(x W + b))`` with act ReLU or swish and optional batch normalisation, by
  default as the published training runs it (fixed statistics: a learned per-unit scale
  and shift; ``HParams.batch_norm``) (:func:`generate`, the one forward pass used by
  training, evaluation and export);
- critic: ``[voxels(N), label(1)] -> hidden widths (N, N, N) -> 1``, ReLU hidden layers,
  linear output (:func:`critic`);
- He-uniform initial weights, zero biases; noise ~ N(0.5, 0.5).

The critic's loss gradient exists twice. :func:`reference_critic_gradients` is the
published algorithm as written: the loss ``mean D(fake) - mean D(real) + GP`` and its
gradient by automatic differentiation (``tf.GradientTape``, nested for the penalty). It is
the reference every variant is tested against. :func:`critic_gradients` computes the same
numbers in closed form, faster (below); the trainer uses it where
:func:`supports_fast_critic` says it applies (``fast_critic: auto``), and a test checks it
against the reference on each supported architecture.

Why the fast critic step is written out by hand
-----------------------------------------------
A critic step needs the weight gradient of ``mean D(fake) - mean D(real) + GP``, where GP
itself contains the input gradient of D. Automatic differentiation of that nested gradient
back-propagates a zero "gradient of the ReLU masks" through the whole forward pass and runs
each of real, fake and interpolated batches through separate small matrix products. For a
ReLU network the input gradient is ``g = a1 W1^T`` with ``a3 = m3 * w4^T``,
``a2 = m2 * (a3 W3^T)``, ``a1 = m1 * (a2 W2^T)`` (``m`` the 0/1 masks), and the masks are
constant almost everywhere, so the penalty's weight gradient has a closed form. The weight
gradient of the plain Wasserstein term uses the very same ``a`` vectors, scaled by -1/B (real)
or +1/B (fake). The first layer of the interpolated rows is free: it is affine, and real
and fake share the label, so ``z1(x_hat) = alpha z1(real) + (1 - alpha) z1(fake)``. The
last product of the penalty's reverse pass is free too: the output layer needs only the
column sums of ``m3 * (e W3)``, which equal the column sums of ``W3 * (e^T m3)``, and
``e^T m3`` times ``w4^T`` is the penalty's part of the top weight gradient anyway. That
leaves 26 products of B x N by N x N per critic step, against about 34 for autodiff.

Two lanes of products
---------------------
A product of 128 rows runs on one core (oneDNN splits only larger ones), so the two cores
of a small node are kept busy by running two independent products at once. Left to itself,
the runtime starts whichever products are ready, and the penalty's chain (interpolated rows
forward, their input gradient, the reverse pass) runs last and alone. Here each product is
placed in one of two in-order lanes (:class:`_Lanes`): the fake rows' first layer and that
chain in the first; in the second the real rows (forward and back), which need nothing
from the generator and so overlap the generator pass that makes the fake rows, then the
fake rows; the weight gradients are dealt out last, layer 0 first (the next critic step
starts with layer 0). The lanes only order the products; the runtime's graph rewrites may then
round a weight gradient differently in the last bit (1e-8 here). The generator step's pass
through the critic is one chain with nothing beside it; there each product is split in
two over halves of the weight's columns (``critic(split=True)``), which run side by side.

Every function works on "packed" parameters too: a leading axis of K independent GANs,
trained together as one batched model (``matmul`` batches over the leading axis): the
``batched`` layout of a pack, meant for GPUs (on CPU cores a pack runs each GAN's own graph
side by side instead, see ``step.InterleavedTrainer``). For
e/gamma (368 voxels, a multiple of 16 floats) a packed GAN computes bit for bit what it
computes alone: every per-GAN slice of every tensor starts on the same SIMD alignment,
except the generator biases of 50 and 100 floats (200 and 400 bytes), whose slices ``k``
start on other alignments. A sum over the batch rows into such a slice rounds differently
with the alignment, so their gradient is summed along the innermost axis instead
(:func:`_bias_add`), where every row starts aligned. For pions (533 voxels) oneDNN's
batched product sums the 533 terms in another order than its plain product (the same for
any K, K = 1 included): one critic step agrees to about 1e-6 of each gradient, and the
two trainings then drift apart as any two summation orders do. Plain products per GAN
would not be enough: measured that way, GAN 0 of a pack matched bit for bit, but GANs
1 and 2 still differed by 1e-8 after 3 iterations, because their 533 x 533 slices start
off the SIMD alignment, which changes the rounding of some element-wise kernel; and that
pack ran at 14 it/s against 21 it/s alone.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import numpy as np
import tensorflow as tf

from .hparams import HParams

#: Momentum of the batch-normalisation moving averages (Keras' default).
BN_MOMENTUM = 0.99
BN_EPSILON = 1e-3


def generator_sizes(hp: HParams, n_voxels: int) -> list[tuple[int, int]]:
    """(fan_in, fan_out) of each generator layer: [noise, label] -> hidden -> N voxels."""
    sizes = [hp.latent_dim + 1, *hp.generator, n_voxels]
    return list(zip(sizes[:-1], sizes[1:]))


def critic_sizes(hp: HParams, n_voxels: int) -> list[tuple[int, int]]:
    """(fan_in, fan_out) of each critic layer (the label row of the first not counted)."""
    sizes = [n_voxels, *hp.critic_widths(n_voxels), 1]
    return list(zip(sizes[:-1], sizes[1:]))


def generator_names(hp: HParams) -> list[str]:
    """Trainable generator parameters, in layer order (w0, b0, [gamma0, beta0,] w1, ...)."""
    kinds = ("w", "b", "gamma", "beta") if hp.batch_norm else ("w", "b")
    return [f"g_{kind}{i}" for i in range(len(hp.generator) + 1) for kind in kinds]


def generator_statistics(hp: HParams) -> list[str]:
    """Batch-normalisation moving means and variances (not trained, used by inference)."""
    if not hp.batch_norm:
        return []
    return [f"g_{kind}{i}" for i in range(len(hp.generator) + 1) for kind in ("mean", "var")]


def critic_names(hp: HParams) -> list[str]:
    """Parameter names of the critic; ``d_c0`` is the label row of the first layer."""
    names = ["d_w0", "d_c0", "d_b0"]
    for i in range(1, len(hp.critic) + 1):
        names += [f"d_w{i}", f"d_b{i}"]
    return names


def _depth(params: Mapping[str, tf.Tensor]) -> int:
    """Number of hidden critic layers of ``params``."""
    return sum(1 for name in params if name.startswith("d_w")) - 1


def _he_uniform(rng: np.random.Generator, fan_in: int, shape: tuple[int, ...]) -> np.ndarray:
    limit = np.sqrt(6.0 / fan_in)
    return rng.uniform(-limit, limit, size=shape).astype(np.float32)


def initial_parameters(hp: HParams, n_voxels: int, seed: int) -> dict[str, np.ndarray]:
    """He-uniform weights and zero biases for one GAN, reproducible from ``seed``.

    Batch normalisation starts as the identity (gamma 1, beta 0, moving mean 0, variance 1).

    Returns
    -------
    dict of str to numpy.ndarray
        Weights ``(fan_in, fan_out)`` and vectors ``(1, fan_out)``, float32.
    """
    rng = np.random.default_rng(seed)
    params: dict[str, np.ndarray] = {}
    for i, (fan_in, fan_out) in enumerate(generator_sizes(hp, n_voxels)):
        params[f"g_w{i}"] = _he_uniform(rng, fan_in, (fan_in, fan_out))
        params[f"g_b{i}"] = np.zeros((1, fan_out), np.float32)
        if hp.batch_norm:
            params[f"g_gamma{i}"] = np.ones((1, fan_out), np.float32)
            params[f"g_beta{i}"] = np.zeros((1, fan_out), np.float32)
            params[f"g_mean{i}"] = np.zeros((1, fan_out), np.float32)
            params[f"g_var{i}"] = np.ones((1, fan_out), np.float32)
    layers = critic_sizes(hp, n_voxels)
    # The first critic layer sees N voxels plus the label: one He-uniform matrix, split.
    fan_in, fan_out = layers[0]
    first = _he_uniform(rng, fan_in + 1, (fan_in + 1, fan_out))
    params["d_w0"], params["d_c0"] = first[:fan_in], first[fan_in:]
    params["d_b0"] = np.zeros((1, fan_out), np.float32)
    for i, (fan_in, fan_out) in enumerate(layers[1:], start=1):
        params[f"d_w{i}"] = _he_uniform(rng, fan_in, (fan_in, fan_out))
        params[f"d_b{i}"] = np.zeros((1, fan_out), np.float32)
    return params


def match_output_layer(
    params: dict[str, np.ndarray], hp: HParams, mean_shower: np.ndarray, scale: float = 0.1
) -> None:
    """``output_init: data``: start the generator at the mean normalised shower.

    The output layer's weights are scaled by ``scale`` and its bias set to the activation's
    inverse of ``mean_shower`` (ReLU: itself; swish, near 0: twice it), so the untrained
    generator's voxels sit at the data's means with small fluctuations.
    """
    last = len(hp.generator)
    params[f"g_w{last}"] = (params[f"g_w{last}"] * scale).astype(np.float32)
    factor = 1.0 if hp.activation == "relu" else 2.0
    params[f"g_b{last}"] = (factor * mean_shower.reshape(1, -1)).astype(np.float32)


def stack_parameters(per_gan: Sequence[Mapping[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """Stack the parameters of K GANs along a new leading pack axis."""
    return {name: np.stack([p[name] for p in per_gan]) for name in per_gan[0]}


def generate(
    params: Mapping[str, tf.Tensor],
    noise: tf.Tensor,
    label: tf.Tensor,
    hp: HParams,
    compute: tf.DType = tf.float32,
    moments: dict[str, tf.Tensor] | None = None,
) -> tf.Tensor:
    """Generator forward pass: normalised voxel energies for ``noise`` and ``label``.

    The one forward pass of the generator: training, evaluation and both exports use it.
    Each layer is ``act(BN(x W + b))`` (BN only with ``hp.batch_norm``), the output layer
    included, so a ReLU generator never emits a negative energy.

    Parameters
    ----------
    params : mapping of str to tf.Tensor
        Generator parameters (``g_*``), packed or not.
    noise : tf.Tensor
        ``(..., B, latent_dim)`` latent vectors.
    label : tf.Tensor
        ``(..., B, 1)`` conditioning labels.
    hp : HParams
        Architecture (widths come from the parameters' shapes).
    compute : tf.DType
        Precision of the matrix-product operands (see :func:`_mm`).
    moments : dict, optional
        Training mode. With ``hp.batch_statistics``, batch normalisation uses the batch's
        mean and variance and stores them here (``g_mean{i}``, ``g_var{i}``) for the
        moving averages. Otherwise (and in inference) it uses the moving statistics,
        which then stay at their start: the published training's behaviour.

    Returns
    -------
    tf.Tensor
        ``(..., B, N)`` normalised voxel energies.
    """
    h = tf.concat([noise, label], axis=-1)
    for i in range(len(hp.generator) + 1):
        h = _bias_add(_mm(h, params[f"g_w{i}"], compute), params[f"g_b{i}"])
        if hp.batch_norm:
            if moments is not None and hp.batch_statistics:
                mean, var = tf.nn.moments(h, axes=[-2], keepdims=True)
                moments[f"g_mean{i}"], moments[f"g_var{i}"] = mean, var
            else:
                mean, var = params[f"g_mean{i}"], params[f"g_var{i}"]
            h = (h - mean) * tf.math.rsqrt(var + BN_EPSILON) * params[f"g_gamma{i}"]
            h = h + params[f"g_beta{i}"]
        h = tf.nn.relu(h) if hp.activation == "relu" else tf.nn.silu(h)
    return h


@tf.custom_gradient  # type: ignore[untyped-decorator]
def _bias_add(x: tf.Tensor, bias: tf.Tensor):  # type: ignore[no-untyped-def]
    """``x + bias`` whose bias gradient does not depend on where a packed slice starts.

    The default gradient sums ``(..., B, n)`` over the rows into ``(..., 1, n)``; that
    reduction vectorises differently for slices of other alignments, so a packed GAN would
    drift from the same GAN trained alone by round-off (then amplified by Adam). Summing
    the transposed rows along the innermost axis gives the same bits packed or not.
    """

    def grad(upstream: tf.Tensor) -> tuple[tf.Tensor, tf.Tensor]:
        rows = tf.reduce_sum(tf.linalg.matrix_transpose(upstream), axis=-1)
        return upstream, tf.expand_dims(rows, -2)

    return x + bias, grad


def critic(
    params: Mapping[str, tf.Tensor],
    x: tf.Tensor,
    label: tf.Tensor,
    compute: tf.DType = tf.float32,
    split: bool = False,
) -> tf.Tensor:
    """Critic forward pass: ``(..., B, 1)`` scores of voxels ``x`` under ``label``.

    ``split`` runs each N x N product as two, over halves of the weight's columns, so that
    both cores work on a pass that has nothing else beside it (the generator step's).
    """
    mm = _mm_halves if split else _mm
    depth = _depth(params)
    h = tf.nn.relu(mm(x, params["d_w0"], compute) + label * params["d_c0"] + params["d_b0"])
    for i in range(1, depth):
        h = tf.nn.relu(mm(h, params[f"d_w{i}"], compute) + params[f"d_b{i}"])
    out: tf.Tensor = tf.matmul(h, params[f"d_w{depth}"]) + params[f"d_b{depth}"]
    return out


def _mm(
    a: tf.Tensor,
    b: tf.Tensor,
    compute: tf.DType,
    transpose_a: bool = False,
    transpose_b: bool = False,
) -> tf.Tensor:
    """``a @ b`` with both operands rounded to ``compute``; the result is float32.

    float32 is the published precision. bfloat16 keeps 8 bits of mantissa in the operands
    and in the result (the product accumulates in float32, but TensorFlow's CPU MatMul has
    one dtype for operands and result); weights, Adam and everything element-wise stay
    float32: the mixed precision that bfloat16 matrix units (Intel AMX, NVIDIA Ampere and
    later) run several times faster. The N -> 1 output layer of the critic stays float32.
    """
    return tf.cast(_product(a, b, compute, transpose_a, transpose_b), tf.float32)


def _mm_halves(a: tf.Tensor, b: tf.Tensor, compute: tf.DType) -> tf.Tensor:
    """``a @ b`` as two products over halves of ``b``'s columns, which run side by side."""
    cut = (b.shape[-1] // 2 + 15) // 16 * 16
    return tf.concat([_mm(a, b[..., :cut], compute), _mm(a, b[..., cut:], compute)], axis=-1)


def _product(
    a: tf.Tensor,
    b: tf.Tensor,
    compute: tf.DType,
    transpose_a: bool = False,
    transpose_b: bool = False,
    after: tf.Tensor | None = None,
) -> tf.Tensor:
    """The product of :func:`_mm` left in ``compute``; only it waits for ``after``."""
    if compute != tf.float32:
        a, b = tf.cast(a, compute), tf.cast(b, compute)
    with tf.control_dependencies([] if after is None else [after]):
        return tf.matmul(a, b, transpose_a=transpose_a, transpose_b=transpose_b)


def _sum_rows(x: tf.Tensor) -> tf.Tensor:
    return tf.reduce_sum(x, axis=-2, keepdims=True)


def _masked(grad: tf.Tensor, activation: tf.Tensor) -> tf.Tensor:
    """``grad * (activation > 0)`` in one kernel (the ReLU mask never materialises)."""
    return tf.raw_ops.ReluGrad(gradients=grad, features=activation)


class _Lanes:
    """Two in-order lanes of matrix products, one per core of a small node.

    Each product waits (a control dependency) for the previous product of its lane, so the
    runtime never starts off-path work ahead of the critical chain. Only the order changes.
    """

    CHAIN, REST = 0, 1

    def __init__(self, compute: tf.DType) -> None:
        self.compute = compute
        self._last: list[tf.Tensor | None] = [None, None]
        self._count = [0, 0]

    def mm(
        self,
        lane: int,
        a: tf.Tensor,
        b: tf.Tensor,
        transpose_a: bool = False,
        transpose_b: bool = False,
    ) -> tf.Tensor:
        """``a @ b`` (see :func:`_mm`) after the previous product of ``lane``.

        Only the product waits: the casts of a bfloat16 product stay free to overlap.
        """
        out = _product(a, b, self.compute, transpose_a, transpose_b, after=self._last[lane])
        self._last[lane] = out
        self._count[lane] += 1
        return tf.cast(out, tf.float32)

    def emptier(self) -> int:
        """The lane with fewer products so far (the second one on a tie)."""
        return self.CHAIN if self._count[0] < self._count[1] else self.REST


def critic_gradients(
    params: Mapping[str, tf.Tensor],
    real: tf.Tensor,
    fake: tf.Tensor,
    label: tf.Tensor,
    alpha: tf.Tensor,
    gp_lambda: float,
    compute: tf.DType = tf.float32,
) -> tuple[dict[str, tf.Tensor], dict[str, tf.Tensor]]:
    """Weight gradients of the WGAN-GP critic loss, in closed form (see module docstring).

    Real, fake and interpolated rows stay separate blocks, and every product is placed in
    one of two lanes (see the module docstring).

    Parameters
    ----------
    params : mapping of str to tf.Tensor
        Critic parameters, packed or not.
    real, fake : tf.Tensor
        ``(..., B, N)`` real and generated showers (normalised).
    label : tf.Tensor
        ``(..., B, 1)`` their common condition.
    alpha : tf.Tensor
        ``(..., B, 1)`` interpolation weights in [0, 1).
    gp_lambda : float
        Weight of the gradient penalty.
    compute : tf.DType
        Precision of the operands of the N x N matrix products (see :func:`_mm`).

    Returns
    -------
    grads : dict of str to tf.Tensor
        d loss / d parameter for every critic parameter.
    metrics : dict of str to tf.Tensor
        ``loss`` (critic loss), ``gp`` (penalty) and ``wdist`` (mean D(real) - mean D(fake)),
        each of shape ``(...)``.
    """
    depth = _depth(params)
    chain, rest = _Lanes.CHAIN, _Lanes.REST
    lanes = _Lanes(compute)
    inv_b = 1.0 / tf.cast(tf.shape(real)[-2], real.dtype)
    w0 = params["d_w0"]
    shift = label * params["d_c0"] + params["d_b0"]
    w_out = params[f"d_w{depth}"]

    def forward(lane: int, z0: tf.Tensor) -> list[tf.Tensor]:
        """Hidden activations of one block of rows, from its first pre-activation."""
        hs = [tf.nn.relu(z0)]
        for i in range(1, depth):
            hs.append(tf.nn.relu(lanes.mm(lane, hs[-1], params[f"d_w{i}"]) + params[f"d_b{i}"]))
        return hs

    def backward(lane: int, hs: list[tf.Tensor], scale: float | tf.Tensor) -> list[tf.Tensor]:
        """``a[l] = scale * dD/dz_l`` of one block (masks from its activations ``hs``)."""
        w_row = tf.broadcast_to(tf.linalg.matrix_transpose(w_out) * scale, tf.shape(hs[-1]))
        a = [_masked(w_row, hs[-1])]
        for i in range(depth - 1, 0, -1):
            up = lanes.mm(lane, a[0], params[f"d_w{i}"], transpose_b=True)
            a.insert(0, _masked(up, hs[i - 1]))
        return a

    # Real rows first in their lane: they need neither the generator nor the other rows.
    # The loss scale of the real (-1/B) and fake (+1/B) rows is folded into their a;
    # interpolated rows keep scale 1: they make the input gradient.
    z_real = lanes.mm(rest, real, w0) + shift
    z_fake = lanes.mm(chain, fake, w0) + shift
    z_int = alpha * z_real + (1.0 - alpha) * z_fake
    hs_real = forward(rest, z_real)
    a_real = backward(rest, hs_real, -inv_b)
    hs_int = forward(chain, z_int)
    a_int = backward(chain, hs_int, 1.0)
    hs_fake = forward(rest, z_fake)
    a_fake = backward(rest, hs_fake, inv_b)
    # hs[l], a[l]: [real, fake, interpolated] blocks of hidden layer l.
    hs = [list(blocks) for blocks in zip(hs_real, hs_fake, hs_int)]
    a = [list(blocks) for blocks in zip(a_real, a_fake, a_int)]
    top = hs[-1]
    d_real = tf.reduce_mean(tf.matmul(top[0], w_out), axis=[-2, -1])
    d_fake = tf.reduce_mean(tf.matmul(top[1], w_out), axis=[-2, -1])
    grad_x = lanes.mm(chain, a[0][2], w0, transpose_b=True)
    norm = tf.sqrt(tf.reduce_sum(tf.square(grad_x), axis=-1, keepdims=True) + 1e-12)
    gp = gp_lambda * tf.reduce_mean(tf.square(norm - 1.0), axis=[-2, -1])

    # dGP/dg, then back through g = a1 W0^T, a1 = m1 (a2 W1^T), ... (masks are constant);
    # layer i's weight gradient: [real, fake, e_i]^T [a_real, a_fake, a_int], dealt out.
    e = (2.0 * gp_lambda * inv_b) * (norm - 1.0) / norm * grad_x
    grads: dict[str, tf.Tensor] = {}
    for i in range(depth):
        w = params[f"d_w{i}"]
        left = [real, fake] if i == 0 else hs[i - 1][:2]
        if i < depth - 1:
            da = lanes.mm(chain, e, w)
            part_int = lanes.mm(lanes.emptier(), e, a[i][2], transpose_a=True)
            e = _masked(da, hs[i][2])
        else:
            # Top layer: a_int = m * w_out^T, so e^T a_int = (e^T m) w_out^T, and the
            # penalty's output-layer gradient sum_rows(m * (e W)) is the column sum of
            # W * (e^T m): one product serves both.
            mask = _masked(tf.ones_like(top[2]), top[2])
            e_m = lanes.mm(lanes.emptier(), e, mask, transpose_a=True)
            part_int = e_m * tf.linalg.matrix_transpose(w_out)
            top_gp = tf.reduce_sum(w * e_m, axis=-2, keepdims=True)
        part_real = lanes.mm(lanes.emptier(), left[0], a[i][0], transpose_a=True)
        part_fake = lanes.mm(lanes.emptier(), left[1], a[i][1], transpose_a=True)
        grads[f"d_w{i}"] = tf.add_n([part_real, part_fake, part_int])
        grads[f"d_b{i}"] = _sum_rows(a[i][0] + a[i][1])
    grads["d_c0"] = _sum_rows(label * (a[0][0] + a[0][1]))
    # Output layer: Wasserstein term h^T s plus the penalty through a_top = m_top * w^T.
    grads[f"d_w{depth}"] = tf.linalg.matrix_transpose(
        inv_b * (_sum_rows(top[1]) - _sum_rows(top[0])) + top_gp
    )
    grads[f"d_b{depth}"] = tf.zeros_like(params[f"d_b{depth}"])
    metrics = {"loss": d_fake - d_real + gp, "gp": gp, "wdist": d_real - d_fake}
    return grads, metrics


def supports_fast_critic(hp: HParams) -> bool:
    """True when :func:`critic_gradients` computes this critic's gradients.

    The closed form needs a ReLU critic (the only critic here) with at least two hidden
    layers: the penalty's last reverse product is folded into the top layer's gradient.
    """
    return len(hp.critic) >= 2


def reference_critic_gradients(
    params: Mapping[str, tf.Tensor],
    real: tf.Tensor,
    fake: tf.Tensor,
    label: tf.Tensor,
    alpha: tf.Tensor,
    gp_lambda: float,
    compute: tf.DType = tf.float32,
) -> tuple[dict[str, tf.Tensor], dict[str, tf.Tensor]]:
    """The WGAN-GP critic loss and its weight gradients by automatic differentiation.

    The published algorithm as written: ``loss = mean D(fake) - mean D(real) + GP`` with
    ``GP = lambda * mean (|grad_x D(x_hat)| - 1)^2`` at ``x_hat = alpha real + (1 - alpha)
    fake``; the gradient of the loss by a second (outer) tape. Same arguments and
    results as :func:`critic_gradients`, for any critic.
    """
    names = [n for n in params if n.startswith("d_")]
    watched = {n: tf.convert_to_tensor(params[n]) for n in names}
    with tf.GradientTape() as outer:
        outer.watch(list(watched.values()))
        x_hat = alpha * real + (1.0 - alpha) * fake
        with tf.GradientTape() as inner:
            inner.watch(x_hat)
            d_hat = tf.reduce_sum(critic(watched, x_hat, label, compute))
        grad_x = inner.gradient(d_hat, x_hat)
        norm = tf.sqrt(tf.reduce_sum(tf.square(grad_x), axis=-1) + 1e-12)
        gp = gp_lambda * tf.reduce_mean(tf.square(norm - 1.0), axis=-1)
        d_real = tf.reduce_mean(critic(watched, real, label, compute), axis=[-2, -1])
        d_fake = tf.reduce_mean(critic(watched, fake, label, compute), axis=[-2, -1])
        loss = d_fake - d_real + gp
        total = tf.reduce_sum(loss)  # the GANs of a pack are independent: sum their losses
    grads = outer.gradient(total, [watched[n] for n in names])
    metrics = {"loss": loss, "gp": gp, "wdist": d_real - d_fake}
    return dict(zip(names, grads)), metrics
