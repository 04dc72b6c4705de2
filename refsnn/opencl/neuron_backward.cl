/* Fused multi-step neuron, backward: BPTT over the whole [T, M] sequence in one
 * launch, reverse t, one neuron's recurrence per lane (see
 * neuron_backward_step.cl, pasted before this file in the layout's form:
 * backward_step_s for `real`, per-neuron; backward_step_v for `realW`, chunked).
 *
 * Inputs saved by the forward: h_seq [T, M]; v_seq [T, M] and v0 [M] (the
 * potentials before each charge, read under V_PRE by kinds whose Jacobian
 * needs them); x_seq (PLIF with decay_input, under X_SEQ). Optional pointers
 * (v_seq, x_seq, grad_spike, grad_v, grad_w, k_partial) may be NULL; grad_w
 * (grad_w_seq [T, M]) and grad_w0 [M] are read and written under HAS_W only
 * (the adaptation state w). PLIF's dL/dk is summed per work-item, in a fixed
 * order, into k_partial[work-item] (HAS_K); the host sums those. grad_spike's
 * rows lie gs_stride elements apart: M, or 0 where one row [M] stands for all
 * T (a gradient broadcast over time). Layouts as in neuron_forward.cl.
 */
#pragma OPENCL FP_CONTRACT OFF

/* The optional reads through the loader LD (one element, one vector, or a
 * last partial vector), compiled in for the kinds that have them (kernels.py
 * defines HAS_W, V_PRE, X_SEQ, HAS_K per kind), else `zero`: no branch in the
 * loops. grad_w (HAS_W) and x_seq (PLIF without decay_input passes NULL) may
 * still be NULL at run time. */
#ifdef HAS_W
#define W_ARGS(LD, p, at) (p ? LD((p) + (at)) : zero), p != 0
#else
#define W_ARGS(LD, p, at) zero, 0
#endif
#ifdef X_SEQ
#define X_ARG(LD, p, at) (p ? LD((p) + (at)) : zero)
#else
#define X_ARG(LD, p, at) zero
#endif
#ifdef V_PRE
#define V_PRE_ARG(LD, p) LD(p)
#else
#define V_PRE_ARG(LD, p) zero
#endif

#ifdef PER_NEURON
#define ELEM(p) (*(p))
__kernel void backward_per_neuron(__global const real *h_seq, __global const real *v_seq,
                                  __global const real *v0, __global const real *x_seq,
                                  __global const real *grad_spike, __global const real *grad_v,
                                  __global const real *grad_w, __global real *grad_x,
                                  __global real *grad_v0, __global real *grad_w0,
                                  __global real *k_partial, const int T, const int M,
                                  const int gs_stride, const real k, const real16 PF,
                                  const real16 PS, const real16 PR, const real16 PJ,
                                  const real16 PW, const int8 ids)
{
    const size_t i = get_global_id(0);
    if (i >= (size_t)M) return;
    const real zero = 0;
    real gh = 0, dv = 0, dk = 0, acc_k = 0, gw = 0, dh_dw = 0, dw_dw = 0;
    for (int t = T - 1; t >= 0; --t) {
        const size_t at = (size_t)t * M + i;
        grad_x[at] = backward_step_s(
            ids, t == T - 1, h_seq[at], grad_v ? grad_v[at] : zero, grad_v != 0,
            grad_spike ? grad_spike[(size_t)t * gs_stride + i] : zero, grad_spike != 0,
            W_ARGS(ELEM, grad_w, at), X_ARG(ELEM, x_seq, at),
            V_PRE_ARG(ELEM, t > 0 ? v_seq + at - M : v0 + i),
            k, &PF, &PS, &PR, &PJ, &PW, &gh, &dv, &dk, &gw, &dh_dw, &dw_dw);
#ifdef HAS_K
        acc_k = acc_k + gh * dk;
#endif
    }
    grad_v0[i] = gh * dv;
#ifdef HAS_W
    grad_w0[i] = gh * dh_dw + gw * dw_dw;
#endif
#ifdef HAS_K
    k_partial[i] = acc_k;
#endif
}
#endif

#ifdef CHUNKED
#define TAIL(p) load_lanes(p, rest)
__kernel void backward_chunked(__global const real *h_seq, __global const real *v_seq,
                               __global const real *v0, __global const real *x_seq,
                               __global const real *grad_spike, __global const real *grad_v,
                               __global const real *grad_w, __global real *grad_x,
                               __global real *grad_v0, __global real *grad_w0,
                               __global real *k_partial, const int T, const int M,
                               const int chunk, const int gs_stride, const real k,
                               const real16 PF, const real16 PS, const real16 PR,
                               const real16 PJ, const real16 PW, const int8 ids)
{
    const size_t base = get_global_id(0) * chunk;
    if (base >= (size_t)M) return;
    const int n = (int)min((size_t)chunk, (size_t)M - base);
    const int nvec = n / W, rest = n - nvec * W;   /* rest: lanes of a last partial vector */
    const realW zero = (realW)(0);
    realW gh[NVEC], dv[NVEC], acc_k = zero;
    real acc_k_rest = 0;
    realW gw[NVEC], dh_dw = zero, dw_dw = zero;      /* the adaptation state (HAS_W) */
    for (int t = T - 1; t >= 0; --t) {
        const size_t row = (size_t)t * M + base;
        const size_t gs_row = (size_t)t * gs_stride + base;
        for (int j = 0; j < nvec; ++j) {
            const size_t at = row + j * W;
            realW dk;
            VSTORE(backward_step_v(
                ids, t == T - 1, VLOAD(h_seq + at), grad_v ? VLOAD(grad_v + at) : zero, grad_v != 0,
                grad_spike ? VLOAD(grad_spike + gs_row + j * W) : zero, grad_spike != 0,
                W_ARGS(VLOAD, grad_w, at), X_ARG(VLOAD, x_seq, at),
                V_PRE_ARG(VLOAD, t > 0 ? v_seq + at - M : v0 + base + j * W), k,
                &PF, &PS, &PR, &PJ, &PW, &gh[j], &dv[j], &dk, &gw[j], &dh_dw, &dw_dw),
                grad_x + at);
#ifdef HAS_K
            acc_k = acc_k + gh[j] * dk;
#endif
        }
        if (rest) {
            const size_t at = row + nvec * W;
            realW dk;
            store_lanes(backward_step_v(
                ids, t == T - 1, TAIL(h_seq + at), grad_v ? TAIL(grad_v + at) : zero, grad_v != 0,
                grad_spike ? TAIL(grad_spike + gs_row + nvec * W) : zero, grad_spike != 0,
                W_ARGS(TAIL, grad_w, at), X_ARG(TAIL, x_seq, at),
                V_PRE_ARG(TAIL, t > 0 ? v_seq + at - M : v0 + base + nvec * W), k,
                &PF, &PS, &PR, &PJ, &PW, &gh[nvec], &dv[nvec], &dk, &gw[nvec], &dh_dw, &dw_dw),
                grad_x + at, rest);
#ifdef HAS_K
            acc_k_rest = add_lanes(acc_k_rest, gh[nvec] * dk, rest);
#endif
        }
    }
    for (int j = 0; j < nvec; ++j) VSTORE(gh[j] * dv[j], grad_v0 + base + j * W);
    if (rest) store_lanes(gh[nvec] * dv[nvec], grad_v0 + base + nvec * W, rest);
#ifdef HAS_W
    for (int j = 0; j < nvec; ++j) VSTORE(gh[j] * dh_dw + gw[j] * dw_dw, grad_w0 + base + j * W);
    if (rest) store_lanes(gh[nvec] * dh_dw + gw[nvec] * dw_dw, grad_w0 + base + nvec * W, rest);
#endif
#ifdef HAS_K
    k_partial[get_global_id(0)] = HSUM(acc_k) + acc_k_rest;
#endif
}
#endif
