"""Exact softmax expectations for one row of n iid logits, at every n and every spread: quadrature.

For logits x_1..x_n iid with a density, Z = sum_j e^(x_j) and p_j = e^(x_j) / Z, the Laplace transform
B(t) = E[exp(-t e^x)] turns every expectation sqrtdk measures into an integral over one variable,
because 1/Z^k = (1/(k-1)!) int_0^inf t^(k-1) e^(-t Z) dt and E[e^(-t Z)] = B(t)^n:

    E[ln Z]           = int (e^(-t) - B(t)^n) dt / t                            (Frullani)
    E[sum_j p_j x_j]  = n int E[x e^x e^(-t e^x)] B(t)^(n-1) dt
    E[sum_j p_j^k]    = n / (k-1)! int t^(k-1) E[e^(kx) e^(-t e^x)] B(t)^(n-1) dt
    E[(sum p^2)^2]    = (1/6) int t^3 (n E[e^(4x) e^(-t e^x)] B^(n-1) + n(n-1) E[e^(2x) e^(-t e^x)]^2 B^(n-2)) dt
    E[1 / sum p^2]    = E[Z^2 / W], W = sum e^(2x): the same with e^(-t W)
    E[max_j p_j]      = n int E[e^x e^(-t e^x) (E[e^(-t e^y); y < x])^(n-1)] dt  (two variables)

so the entropy E[H] = E[ln Z] - E[sum p x], and E||J||_F^2 = E[sum p^2 - 2 sum p^3 + (sum p^2)^2] for the
softmax Jacobian J = diag(p) - p p^T. With t = e^(-tau) every inner expectation is a correlation of the
logits' density with a fixed kernel of x - tau (e^(ku) exp(-e^u), ...), which one FFT computes on a
uniform grid; the outer integrals over tau are sums on the same grid. The integrands are smooth and
decay doubly exponentially on one side and exponentially on the other, so the trapezoid rule converges
fast: on the default grid (spacing min(0.05, s/8) for logits of spread s) every expectation is within
2e-5 relative of the grid at half the spacing (tests/test_exact.py), and agrees with brute-force
simulation within its standard error.

For the attention rows sqrtdk samples, a row's logits are iid given its query: c q.k_j with k_j's entries
iid N(mu, sigma^2) is N(c mu sum q, c^2 sigma^2 |q|^2), and the softmax ignores the common shift; under
QK-norm, g cos(q, k_j) for mean-0 Gaussian keys has the density of g times a Beta((d-1)/2, (d-1)/2)
variable on [-1, 1], whatever q. So `attention_row` averages `row` over the law of |q|^2 (sigma^2 times a
noncentral chi-square) by Gauss quadrature. A query's own key correlated with it (mean-0 entries) makes
one logit of its row normal with a mean and spread of its own, still independent of the others given
the query: every formula above then singles that logit out (`own_key_row`). None where the logits of a
row are not independent normals given the query (projected inputs, other distributions, a correlated own
key with a mean or under QK-norm).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

SPAN = 8.5  # the normal density is cut at SPAN standard deviations (its mass beyond: 2e-17)
LOW, HIGH = 30.0, 4.0  # the kernels of u = x - tau are negligible below -LOW and above HIGH
STEP = 0.2  # the largest grid spacing (logits of a large spread)
TAU_STEP = 0.1  # the tau grid of E[max p]
SPREAD_NODES = 8  # Gauss nodes over the law of |q|
S_MIN = 1e-3  # the smallest spread computed on a grid (see _normal_row_at)
S_MAX = 2000.0  # the largest: the grid grows with the spread (attention_row gives None beyond it)


@dataclass(frozen=True)
class Row:
    """Expectations over one row of n iid logits (or, from attention_row, over the rows of a query law)."""

    entropy: float  # E[H], nats
    sum_p2: float  # E[sum p^2]
    participation: float  # E[1 / sum p^2]
    max_prob: float  # E[max p]
    jacobian_sq: float  # E[||diag(p) - p p^T||_F^2]

    @property
    def jacobian_rms(self) -> float:
        """sqrt(E||J||_F^2): the root-mean-square Jacobian norm (not the mean of ||J||_F)."""
        return math.sqrt(max(self.jacobian_sq, 0.0))


FIELDS = ("entropy", "sum_p2", "participation", "max_prob", "jacobian_sq")


def _kernels(h: float) -> tuple[np.ndarray, dict[str, np.ndarray]]:
    """u on the grid (from HIGH down to -LOW, as the convolution wants it reversed) and each kernel."""
    j_low, j_high = math.ceil(LOW / h), math.ceil(HIGH / h)
    u = h * np.arange(j_high, -j_low - 1, -1, dtype=np.float64)
    e = np.exp(u)
    m = np.exp(-e)
    e2 = e * e
    m2 = np.exp(-e2)
    return u, {
        "tail": -np.expm1(-e),  # 1 - exp(-e^u): 1 - B
        "g1": e * m,
        "g1u": u * e * m,
        "g2": e2 * m,
        "g3": e2 * e * m,
        "g4": e2 * e2 * m,
        "tail2": -np.expm1(-e2),  # for W = sum e^(2x): 1 - C
        "h1": e * m2,
        "h2": e2 * m2,
    }


def _row(n: int, x0: float, h: float, a: np.ndarray, max_prob: float, a0: np.ndarray | None = None) -> Row:
    """The expectations for n independent logits whose law puts mass a_i at x0 + i h, or, given `a0`, for
    one logit of law a0 (a query's own key) and n - 1 of law a (E[max p] computed apart).

    With one logit apart, every product B^n of the iid case becomes B0 B^(n-1), and each term that singles
    out one logit (n G B^(n-1)) is split into that logit being the special one or one of the others:
    G0 B^(n-1) + (n - 1) G B0 B^(n-2); pairs of logits likewise."""
    u, kernels = _kernels(h)
    j_high = round(u[0] / h)
    laws = {"iid": a} if a0 is None else {"iid": a, "own": a0}
    # F[p] = sum_i a_i k(x_i - tau_p), tau_p = x0 + (p - j_high) h: full linear convolutions by one FFT
    # length (numpy's; scipy.signal would take seconds to import), each law transformed once
    size = len(a) + len(u) - 1
    length = 1 << (size - 1).bit_length()
    spectra = {name: np.fft.rfft(k, length) for name, k in kernels.items()}
    conv = {}
    for law, m in laws.items():
        transformed = np.fft.rfft(m, length)
        conv[law] = {name: np.fft.irfft(transformed * k, length)[:size] for name, k in spectra.items()}
    tau = x0 + h * (np.arange(len(conv["iid"]["g1"])) - j_high)

    def transform(law: str, tail_name: str) -> np.ndarray:
        """log of B (or of C, for W = sum e^(2x)) on the tau grid; 1 - exp(-e^u) -> 1 above u = HIGH:
        the mass of the logits above tau + HIGH, which the kernel omits."""
        m = laws[law]
        above = np.concatenate([1.0 - np.cumsum(m), np.zeros(len(tau) - len(m))])
        tail = np.clip(conv[law][tail_name] + above, 0.0, 1.0)
        with np.errstate(divide="ignore"):  # B = 0 far left: log B = -inf, B^k = 0
            return np.log1p(-tail)

    def powers(log_b: np.ndarray) -> dict[int, np.ndarray]:
        return {k: np.exp(k * log_b) if k > 0 else np.ones_like(log_b) for k in (n - 3, n - 2, n - 1, n) if k >= 0}

    g = conv["iid"]
    g0 = conv.get("own", g)
    log_b, log_c = transform("iid", "tail"), transform("iid", "tail2")
    b, cw = powers(log_b), powers(log_c)
    if a0 is None:
        b0, c0 = np.exp(log_b), np.exp(log_c)
    else:
        b0, c0 = np.exp(transform("own", "tail")), np.exp(transform("own", "tail2"))

    def one(name: str, bb: dict[int, np.ndarray], bb0: np.ndarray) -> np.ndarray:
        """E[sum_j k(x_j - tau) prod_(l != j) B_l]: the special logit's term and the others'."""
        return g0[name] * bb[n - 1] + (n - 1) * g[name] * bb0 * bb[n - 2]

    def two(name: str, bb: dict[int, np.ndarray], bb0: np.ndarray) -> np.ndarray:
        """E[sum_(j != k) k(x_j - tau) k(x_k - tau) prod_(l != j, k) B_l]."""
        out = 2 * (n - 1) * g0[name] * g[name] * bb[n - 2]
        if n > 2:
            out = out + (n - 1) * (n - 2) * g[name] ** 2 * bb0 * bb[n - 3]
        return out

    # at the grid's ends both terms vanish (left) or cancel to below 1e-17 (right: their difference decays
    # like n E[e^x] e^(-tau), and the grid reaches LOW past the largest logit)
    with np.errstate(over="ignore"):  # e^(-tau) overflows far left, where exp(-e^(-tau)) is 0
        log_z = h * np.sum(np.exp(-np.exp(-tau)) - b0 * b[n - 1])
    px = h * np.sum((g0["g1u"] + tau * g0["g1"]) * b[n - 1] + (n - 1) * (g["g1u"] + tau * g["g1"]) * b0 * b[n - 2])
    sum_p2 = h * np.sum(one("g2", b, b0))
    sum_p3 = h / 2 * np.sum(one("g3", b, b0))
    sum_p2_sq = h / 6 * np.sum(one("g4", b, b0) + two("g2", b, b0))
    participation = 2 * h * np.sum(one("h2", cw, c0) + two("h1", cw, c0))
    return Row(
        entropy=float(log_z - px),
        sum_p2=float(sum_p2),
        participation=float(participation),
        max_prob=max_prob,
        jacobian_sq=float(sum_p2 - 2 * sum_p3 + sum_p2_sq),
    )


def _largest_terms(n: int, kernel: np.ndarray, w: list[np.ndarray], d: list[np.ndarray]) -> float:
    """The sum over a block of taus and nodes of E[max p]'s integrand: n w g1 D^(n-1) for iid logits, or,
    with a second law apart (w[1], d[1]), w0 g1 D^(n-1) + (n - 1) w g1 D0 D^(n-2)."""
    if len(w) == 1:
        return n * float(np.sum(w[0] * kernel * _power(d[0], n - 1)))
    rest = _power(d[0], n - 2) if n > 2 else np.ones_like(d[0])
    return float(np.sum(kernel * (w[1] * rest * d[0] + (n - 1) * w[0] * d[1] * rest)))


def _power(x: np.ndarray, k: int) -> np.ndarray:
    """x^k for 0 < x <= 1 and k >= 1: by repeated squaring for small k (a few products instead of a
    logarithm and an exponential a value), as exp(k log x) beyond; both to a relative k * 1e-16."""
    if k > 64:
        return np.exp(k * np.log(x))
    while not k & 1:  # the lowest set bit of k first
        x, k = x * x, k >> 1
    result, square = x.copy(), x
    while k := k >> 1:
        square = square * square
        if k & 1:
            result *= square
    return result


def _max_prob(n: int, x0: float, h: float, a: np.ndarray, a0: np.ndarray | None = None, on_nodes: bool = True) -> float:
    """E[max p] = n int dtau sum_i a_i g1(x_i - tau) D(tau, x_i)^(n-1), D(tau, x) = E[exp(-e^(y-tau)); y < x]
    (the trapezoid sum with its first Euler-Maclaurin correction: fourth order in h). The integrand is
    smooth in tau on a scale of 1 whatever the spread, so tau has its own grid (TAU_STEP); for each tau
    only the logits within [tau - LOW, tau + HIGH] are visited, and the mass below them enters D whole
    (there exp(-e^(y-tau)) = 1). With one logit of law a0 apart, the largest is that one (a0, D^(n-1)) or
    one of the others (a, D0 D^(n-2)).

    `on_nodes` (the default) puts tau on every stride-th node instead (`_max_prob_on_nodes`), where the
    kernels are computed once; this sum, tau on its own grid, is what tests/test_exact.py checks it with."""
    if on_nodes:
        return _max_prob_on_nodes(n, x0, h, a, a0)
    size = len(a)
    width = min(size, math.ceil((LOW + HIGH) / h) + 2)
    laws = [a] if a0 is None else [a, a0]
    cumulative = [np.concatenate([[0.0], np.cumsum(m)]) for m in laws]
    x_last = x0 + h * (size - 1)
    tau = np.arange(x0 - HIGH, x_last + LOW + TAU_STEP, TAU_STEP)
    total = 0.0
    for start in range(0, len(tau), 256):
        t = tau[start : start + 256, None]
        lo = np.clip(np.floor((t - LOW - x0) / h).astype(np.int64), 0, size - width)
        idx = lo + np.arange(-1, width + 1)[None, :]  # one node more on each side, for the end correction
        offset = x0 + h * idx - t  # x_i - tau
        inside = (idx >= 0) & (idx < size)
        inner = offset[:, 1:-1]
        kernel = np.exp(inner - np.exp(inner))
        w, d = [], []
        for m, cum in zip(laws, cumulative):
            wm = np.where(inside, m[np.clip(idx, 0, size - 1)], 0.0)
            c = wm * np.exp(-np.exp(offset))
            w.append(wm[:, 1:-1])
            d.append(
                np.clip(
                    cum[lo] + np.cumsum(c[:, 1:-1], axis=1) - 0.5 * c[:, 1:-1] - (c[:, 2:] - c[:, :-2]) / 24,
                    1e-300,
                    1.0,
                )
            )
        total += _largest_terms(n, kernel, w, d)
    return TAU_STEP * total


PRUNE = 60.0  # terms below e^-PRUNE (1e-26) of E[max p] are left out


def _max_prob_on_nodes(n: int, x0: float, h: float, a: np.ndarray, a0: np.ndarray | None = None) -> float:
    """_max_prob with tau on the nodes x0 + j h, every `stride`-th one (a spacing of TAU_STEP or just below).

    The offsets x_i - tau are then multiples of h, so the kernels of every offset are computed once: where
    the window [tau - LOW, tau + HIGH] is narrower than the grid (a spread of a few units or more), each tau
    visits its window's nodes, at the same offsets for every tau; otherwise each tau visits every node of
    the grid, at offsets that slide by `stride` from one tau to the next (views of one array of offsets).
    tau starts where the logits below it are too few to be the largest (F(x)^(n-1) < e^-PRUNE), which
    leaves out most of the range at large n; on the whole grid those logits enter D alone, as one sum a
    tau, and are never the largest."""
    size = len(a)
    j_low, j_high = math.ceil(LOW / h), math.ceil(HIGH / h)
    laws = [a] if a0 is None else [a, a0]
    cumulative = [np.concatenate([[0.0], np.cumsum(m)]) for m in laws]
    # every term with the largest logit at x_i carries D^(n-1) <= F(x_i)^(n-1) (or ^(n-2) with a0 apart)
    power = n - 1 if a0 is None else n - 2
    first = 0
    if power > 0:
        with np.errstate(divide="ignore"):
            first = int(np.argmax(power * np.log(cumulative[0][1:]) > -PRUNE))
    stride = max(1, int(TAU_STEP / h + 1e-9))
    taus = np.arange(first - j_high, size + j_low + stride, stride)  # tau_p = x0 + taus[p] h
    windowed = j_low + j_high + 3 <= size
    if windowed:
        r = np.arange(-j_low - 1, j_high + 2)  # the window's offsets i - j, one node more on each side
        pad_low, pad_high = j_low + j_high + 2, j_low + j_high + stride + 2  # zeros around the laws: no masks
        padded = [np.concatenate([np.zeros(pad_low), m, np.zeros(pad_high)]) for m in laws]
        below = [np.concatenate([np.zeros(pad_low), cum, np.ones(pad_high)]) for cum in cumulative]
        u = h * r
    else:
        # node i (first - 1 .. size, one more on each side of those that can be the largest) against tau j:
        # offset i - j, in row -1 - j - k_min of sliding windows over the offsets, column i + 1 - first;
        # the row moves back by `stride` from one tau to the next
        k_min = -1 - int(taus[-1])
        u = h * np.arange(k_min, size - int(taus[0]) + 1)
        width = size + 2 - first
        padded = [np.concatenate([[0.0], m, [0.0]])[first:] for m in laws]
    e_offset = np.exp(-np.exp(u))
    inner = u[1:-1] if windowed else u
    kernel = np.exp(inner - np.exp(inner))
    total = 0.0
    for start in range(0, len(taus), 256):
        block = taus[start : start + 256]
        if windowed:
            idx = block[:, None] + pad_low + r[None, :]
            kernels = kernel
        else:
            rows = -1 - block - k_min
            e_offset_rows = np.lib.stride_tricks.sliding_window_view(e_offset[first:], width)[rows]
            kernels = np.lib.stride_tricks.sliding_window_view(kernel[first:], width)[rows, 1:-1]
            if first:  # sum_(i < first) a_i exp(-e^(x_i - tau)): offsets in the columns before the first
                lower = np.lib.stride_tricks.sliding_window_view(e_offset[1:], first)[rows]
        w, d = [], []
        for law, m in enumerate(padded):
            if windowed:
                wm = m[idx]
                c = wm * e_offset
            else:
                wm = np.broadcast_to(m, (len(block), width))
                c = m * e_offset_rows
            inside = c[:, 1:-1]
            dd = np.cumsum(inside, axis=1)
            dd -= 0.5 * inside
            dd -= (c[:, 2:] - c[:, :-2]) / 24
            if windowed:
                dd += below[law][idx[:, 1]][:, None]
            elif first:
                dd += (lower @ laws[law][:first])[:, None]
            np.clip(dd, 1e-300, 1.0, out=dd)
            w.append(wm[:, 1:-1])
            d.append(dd)
        total += _largest_terms(n, kernels, w, d)
    return stride * h * total


def _spacings(n: int, s: float) -> tuple[float, float]:
    """Grid spacings for logits of spread s: for every expectation but E[max p] (spectrally accurate, so
    coarse), and for E[max p], whose inner integral is fourth order and which depends on the gaps
    between the largest of n logits (about s / sqrt(2 ln n))."""
    return min(STEP, s / 6), min(STEP / 2, s / (10 * math.sqrt(2 * math.log(n))))


def _normal_grid(s: float, h: float) -> tuple[float, float, np.ndarray]:
    """(x0, h, a): the normal law N(0, s^2) on the nodes x0 + i h."""
    count = math.ceil(SPAN * s / h)
    x = h * np.arange(-count, count + 1)
    a = np.exp(-0.5 * (x / s) ** 2)
    return float(x[0]), h, a / a.sum()


def _cosine_grid(d: int, g: float, h: float) -> tuple[float, float, np.ndarray]:
    """(x0, h, a): g cos(q, k) in d dimensions, each node with its cell's exact mass ((1 + cos) / 2 is
    Beta((d-1)/2, (d-1)/2), whose distribution function is the regularised incomplete beta function)."""
    from scipy import special

    count = math.ceil(g / h)
    x = h * np.arange(-count, count + 1)
    edges = np.clip((np.concatenate([x - h / 2, [x[-1] + h / 2]]) / g + 1) / 2, 0.0, 1.0)
    a = np.diff(special.betainc((d - 1) / 2, (d - 1) / 2, edges))
    return float(x[0]), h, a / a.sum()


@lru_cache(maxsize=4096)
def normal_row(n: int, s: float) -> Row:
    """Expectations for n iid N(0, s^2) logits (n >= 2, s > 0)."""
    if n < 2 or not s > 0:
        raise ValueError(f"normal_row needs n >= 2 and s > 0, not n = {n}, s = {s}")
    h, h_max = _spacings(n, s)
    return _row(n, *_normal_grid(s, h), _max_prob(n, *_normal_grid(s, h_max)))


def _normal_pair_grid(s: float, m0: float, s0: float, h: float) -> tuple[float, float, np.ndarray, np.ndarray]:
    """(x0, h, a, a0): N(0, s^2) and N(m0, s0^2) on the same nodes x0 + i h, covering both."""
    lo = math.floor(min(-SPAN * s, m0 - SPAN * s0) / h)
    hi = math.ceil(max(SPAN * s, m0 + SPAN * s0) / h)
    x = h * np.arange(lo, hi + 1)
    a = np.where(np.abs(x) <= SPAN * s, np.exp(-0.5 * (x / s) ** 2), 0.0)
    a0 = np.where(np.abs(x - m0) <= SPAN * s0, np.exp(-0.5 * ((x - m0) / s0) ** 2), 0.0)
    return float(x[0]), h, a / a.sum(), a0 / a0.sum()


@lru_cache(maxsize=4096)
def own_key_row(n: int, s: float, m0: float, s0: float) -> Row:
    """Expectations for n independent logits, n - 1 of them N(0, s^2) and one N(m0, s0^2): a query's row
    when its own key is correlated with it (n >= 2, s, s0 > 0)."""
    if n < 2 or not (s > 0 and s0 > 0):
        raise ValueError(f"own_key_row needs n >= 2 and s, s0 > 0, not n = {n}, s = {s}, s0 = {s0}")
    h, h_max = _spacings(n, min(s, s0))
    x0, h, a, a0 = _normal_pair_grid(s, m0, s0, h)
    return _row(n, x0, h, a, _max_prob(n, *_normal_pair_grid(s, m0, s0, h_max)), a0)


@lru_cache(maxsize=4096)
def cosine_row(n: int, d: int, g: float) -> Row:
    """Expectations for n iid logits g cos(q, k_j), k_j isotropic in d dimensions (d >= 3): g times a
    Beta((d-1)/2, (d-1)/2) variable moved to [-1, 1]; the grid's cells get their exact mass."""
    if n < 2 or d < 3 or not g > 0:
        raise ValueError(f"cosine_row needs n >= 2, d >= 3 and g > 0, not n = {n}, d = {d}, g = {g}")
    # cell masses with the kernels taken at the cells' centres: second order, so a finer grid
    h, h_max = (spacing / 8 for spacing in _spacings(n, g / math.sqrt(d)))
    return _row(n, *_cosine_grid(d, g, h), _max_prob(n, *_cosine_grid(d, g, h_max)))


def _gauss(x: np.ndarray, w: np.ndarray, k: int) -> tuple[np.ndarray, np.ndarray]:
    """The k-node Gauss rule of the discrete measure (x, w): exact for polynomials of degree < 2k in x
    under that measure (Lanczos, with full reorthogonalisation, on the diagonal matrix of the nodes)."""
    q = np.zeros((k, len(x)))
    alpha, beta = np.zeros(k), np.zeros(k)
    v = np.sqrt(w / w.sum())
    for j in range(k):
        q[j] = v
        u = x * v
        alpha[j] = u @ v
        u = u - alpha[j] * v - (beta[j - 1] * q[j - 1] if j else 0.0)
        u -= q[: j + 1].T @ (q[: j + 1] @ u)
        if j + 1 < k:
            beta[j] = np.linalg.norm(u)
            v = u / beta[j]
    nodes, vectors = np.linalg.eigh(np.diag(alpha) + np.diag(beta[:-1], 1) + np.diag(beta[:-1], -1))
    return nodes, vectors[0] ** 2


def _spread_nodes(d_k: int, noncentrality: float) -> tuple[np.ndarray, np.ndarray]:
    """Nodes and weights for E[f(X)], X = |q|^2 / sigma^2 noncentral chi-square (d_k, noncentrality): the
    SPREAD_NODES-node Gauss rule (twice as many below d_k = 16, where the law is wide) in r = |q| / sigma
    for the law of r (built from that law on a fine grid
    between its 1e-13 and 1 - 1e-13 quantiles), so that a smooth f of the spread is integrated as well as
    a polynomial of degree 2 SPREAD_NODES - 1 would be (tests/test_exact.py measures it)."""
    from scipy import special

    if noncentrality > 1e4:  # |q| within 2% of its mean: the normal law of X (mean d + lam, var 2 (d + 2 lam))
        z, w = special.roots_hermitenorm(SPREAD_NODES)
        x = d_k + noncentrality + math.sqrt(2 * (d_k + 2 * noncentrality)) * z
        return x, w / w.sum()
    if noncentrality:
        from scipy import stats  # a second or more to import: only for entries with a mean

        law = stats.ncx2(d_k, noncentrality)
        r = np.linspace(math.sqrt(law.ppf(1e-13)), math.sqrt(law.isf(1e-13)), 4001)
        density = law.pdf(r * r)
    else:  # the central chi-square from scipy.special: its quantiles, and its density up to a constant
        half = d_k / 2
        r = np.linspace(
            math.sqrt(2 * special.gammaincinv(half, 1e-13)), math.sqrt(2 * special.gammainccinv(half, 1e-13)), 4001
        )
        log_density = special.xlogy(half - 1, r * r) - r * r / 2
        density = np.exp(log_density - log_density.max())
    nodes, weights = _gauss(r, density * 2 * r, SPREAD_NODES if d_k >= 16 else 2 * SPREAD_NODES)
    return nodes * nodes, weights / weights.sum()


def normal_row_at(n: int, s: float) -> Row:
    """normal_row, and below S_MIN its expansion about the uniform row (s = 0): every expectation but
    E[max p] is even and smooth in s, f(0) + (f(S_MIN) - f(0)) (s / S_MIN)^2 to O(S_MIN^4); E[max p]
    grows like |s| (the largest of n normals), so it is interpolated linearly, to O(S_MIN^2)."""
    if s >= S_MIN:
        return normal_row(n, s)
    edge, t = normal_row(n, S_MIN), s / S_MIN
    flat = Row(math.log(n), 1 / n, float(n), 1 / n, (n - 1) / n**2)
    weights = {f: t if f == "max_prob" else t * t for f in FIELDS}
    return Row(*((1 - weights[f]) * getattr(flat, f) + weights[f] * getattr(edge, f) for f in FIELDS))


@lru_cache(maxsize=4096)
def attention_row(
    n: int, d_k: int, mean: float, std: float, c: float, normalised: bool, rho: float = 0.0
) -> Row | None:
    """The expectations over the rows of attention logits c q.k_j (or c cos(q, k_j) under QK-norm) for
    Gaussian query and key entries N(mean, std^2), the query's own key correlated with it by `rho`; None
    where no exact form is given here (QK-norm of entries with a mean: the cosines of a row are not iid
    given the query; a correlated own key with a mean or under QK-norm; spreads beyond S_MAX, where the
    grid would not fit in memory, or a correlated row's below S_MIN).

    With k_0 = rho q + sqrt(1 - rho^2) std z and mean 0, given |q| = std r the own key's logit is
    N(rho c std^2 r^2, (1 - rho^2) s^2) and the others N(0, s^2), s = c std^2 r, all independent."""
    if n < 2 or c == 0:
        return None
    if normalised:
        ok = mean == 0 and rho == 0 and d_k >= 3 and abs(c) <= S_MAX
        return cosine_row(n, d_k, abs(c)) if ok else None
    if rho and mean != 0:
        return None
    with np.errstate(all="ignore"):  # entries far from 1 in scale: whatever fails is checked below
        noncentrality = d_k * mean * mean / (std * std)
        x, w = _spread_nodes(d_k, noncentrality)
        spreads = abs(c) * std * std * np.sqrt(x)
        if not (np.all(np.isfinite(spreads)) and np.all(np.isfinite(w))) or spreads.max() > S_MAX:
            return None
        if rho:
            centres = rho * c * std * std * x
            if spreads.min() * math.sqrt(1 - rho * rho) < S_MIN or np.abs(centres).max() > S_MAX:
                return None
            rows = [
                own_key_row(n, float(sp), float(m0), float(sp * math.sqrt(1 - rho * rho)))
                for sp, m0 in zip(spreads, centres)
            ]
        else:
            rows = [normal_row_at(n, float(sp)) for sp in spreads]
        out = Row(*(float(sum(wi * getattr(r, f) for wi, r in zip(w, rows))) for f in FIELDS))
    return out if all(math.isfinite(getattr(out, f)) for f in FIELDS) else None
