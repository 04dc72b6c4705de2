/* Fused multi-step neuron, forward: the whole [T, M] sequence in one launch.
 *
 * kernels.py prepends the element type `real` and, for the chunked layout, the
 * vector type `realW` of width W, NVEC (vectors per chunk), VLOAD/VSTORE and
 * the lane helpers of chunk_lanes.cl; then the step function generated from
 * the Python formulas (refsnn.fused.step_formula over refsnn.neuron_dynamics)
 * in the layout's form, scalar (step_s, per-neuron) or vector (step_v,
 * chunked), dispatching on the variant index `vf`:
 *   step_s / step_v(vf, x, v, &w, k, &P, &h, &s) -> v after reset; stores h,
 *   spike and (kinds with the adaptation state w, HAS_W) the new w into w
 * Parameters arrive in the real16 argument P; k is PLIF's decay sigmoid(w).
 * w0 [M] and w_seq [T, M] are read and written under HAS_W only (else NULL).
 *
 * Layouts: forward_per_neuron runs one work-item per neuron (coalesced rows,
 * for GPUs); forward_chunked runs one work-item per `chunk` contiguous neurons
 * (a multiple of W, at most W * NVEC) as realW vectors with T as the outer
 * loop, so that each row is read and written in long runs (for CPU devices; a
 * chunk's last partial vector goes through the same vector code, its lanes
 * gathered and scattered one by one). Both compute the same values.
 */
#pragma OPENCL FP_CONTRACT OFF

#ifdef PER_NEURON
__kernel void forward_per_neuron(__global const real *x_seq, __global const real *v0,
                                 __global const real *w0, __global real *spike_seq,
                                 __global real *v_seq, __global real *w_seq,
                                 __global real *h_seq, const int T, const int M,
                                 const real k, const real16 P, const int vf)
{
    const size_t i = get_global_id(0);
    if (i >= (size_t)M) return;
    real v = v0[i], w = 0;      /* the adaptation state; untouched without HAS_W */
#ifdef HAS_W
    w = w0[i];
#endif
    for (int t = 0; t < T; ++t) {
        const size_t at = (size_t)t * M + i;
        real h, s;
        v = step_s(vf, x_seq[at], v, &w, k, &P, &h, &s);
        spike_seq[at] = s;
        h_seq[at] = h;
        v_seq[at] = v;
#ifdef HAS_W
        w_seq[at] = w;
#endif
    }
}
#endif

#ifdef CHUNKED
__kernel void forward_chunked(__global const real *x_seq, __global const real *v0,
                              __global const real *w0, __global real *spike_seq,
                              __global real *v_seq, __global real *w_seq,
                              __global real *h_seq, const int T, const int M,
                              const int chunk, const real k, const real16 P, const int vf)
{
    const size_t base = get_global_id(0) * chunk;
    if (base >= (size_t)M) return;
    const int n = (int)min((size_t)chunk, (size_t)M - base);
    const int nvec = n / W, rest = n - nvec * W;   /* rest: lanes of a last partial vector */
    realW v[NVEC];
    realW w[NVEC];              /* the adaptation state; untouched without HAS_W */
    for (int j = 0; j < nvec; ++j) v[j] = VLOAD(v0 + base + j * W);
    if (rest) v[nvec] = load_lanes(v0 + base + nvec * W, rest);
#ifdef HAS_W
    for (int j = 0; j < nvec; ++j) w[j] = VLOAD(w0 + base + j * W);
    if (rest) w[nvec] = load_lanes(w0 + base + nvec * W, rest);
#endif
    for (int t = 0; t < T; ++t) {
        const size_t row = (size_t)t * M + base;
        for (int j = 0; j < nvec; ++j) {
            const size_t at = row + j * W;
            realW h, s;
            v[j] = step_v(vf, VLOAD(x_seq + at), v[j], &w[j], k, &P, &h, &s);
            VSTORE(s, spike_seq + at);
            VSTORE(h, h_seq + at);
            VSTORE(v[j], v_seq + at);
#ifdef HAS_W
            VSTORE(w[j], w_seq + at);
#endif
        }
        if (rest) {
            const size_t at = row + nvec * W;
            realW h, s;
            v[nvec] = step_v(vf, load_lanes(x_seq + at, rest), v[nvec], &w[nvec], k, &P, &h, &s);
            store_lanes(s, spike_seq + at, rest);
            store_lanes(h, h_seq + at, rest);
            store_lanes(v[nvec], v_seq + at, rest);
#ifdef HAS_W
            store_lanes(w[nvec], w_seq + at, rest);
#endif
        }
    }
}
#endif
