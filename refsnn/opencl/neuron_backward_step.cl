/* One backward step of the fused neuron, for values of type V. kernels.py pastes
 * this file with V = real, SFX = s (per-neuron layout) or V = realW, SFX = v
 * (chunked layout).
 *
 * In: h = h_seq[t]; gv, gs, gw_in = grad_v_seq[t], grad_spike_seq[t],
 * grad_w_seq[t] (ignored unless has_gv / has_gs / has_gw); x = x_seq[t] and
 * v_pre = the potential before the charge of step t (read by the charge
 * Jacobian of the kinds that need them).
 * In/out: *gh = dL/dh[t+1] -> dL/dh[t]; *dv = dh[t+1]/dv[t] -> dh[t]/dv[t-1].
 * Out: *dk = dh[t]/dk (PLIF). Returns grad_x_seq[t] = dL/dh[t] * dh[t]/dx[t].
 * Kinds with the adaptation state w (HAS_W) also carry *gw = dL/dw[t+1] ->
 * dL/dw[t] and set *dh_dw = dh[t]/dw[t-1], *dw_dw = dw[t]/dw[t-1] (the order
 * of operations is the numpy-fused backend's, see refsnn.fused).
 */
#pragma OPENCL FP_CONTRACT OFF
#define FN(name) XPASTE(name, XPASTE(_, SFX))

static inline V FN(backward_step)(const int8 ids, const int last, const V h,
                                  const V gv, const int has_gv, const V gs, const int has_gs,
                                  const V gw_in, const int has_gw,
                                  const V x, const V v_pre, const real k,
                                  const real16 *PF, const real16 *PS, const real16 *PR,
                                  const real16 *PJ, const real16 *PW, V *gh, V *dv, V *dk,
                                  V *gw, V *dh_dw, V *dw_dw)
{
    const V over = FN(over)(ids.s0, h, PF);
    const V psi = FN(psi)(ids.s1, over, PS);
    const V r = FN(rjac)(ids.s2, over, h, psi, PR);
    V carry = (V)(0);
    if (!last) carry = *gh * *dv;
    if (has_gv) carry = carry + gv;
    V g = carry * r;
    if (has_gs) g = g + gs * psi;
#ifdef HAS_W
    const V dw_dh = FN(wjac)(ids.s4, psi, PW, dh_dw, dw_dw);
    V carry_w = (V)(0);
    if (!last) carry_w = *gw * *dw_dw + *gh * *dh_dw;
    if (has_gw) carry_w = carry_w + gw_in;
    *gw = carry_w;
    g = g + carry_w * dw_dh;
#endif
    V dx;
    *dv = FN(jac)(ids.s3, x, v_pre, k, PJ, &dx, dk);
    *gh = g;
    return g * dx;
}

#undef FN
