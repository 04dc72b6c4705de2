/* One backward step of the fused neuron, for values of type V. kernels.py pastes
 * this file twice: with V = real, SFX = s and with V = realW, SFX = v.
 *
 * In: h = h_seq[t]; gv, gs = grad_v_seq[t], grad_spike_seq[t] (ignored unless
 * has_gv / has_gs); x = x_seq[t] and v_pre = the potential before the charge of
 * step t (read by the charge Jacobian of the kinds that need them).
 * In/out: *gh = dL/dh[t+1] -> dL/dh[t]; *dv = dh[t+1]/dv[t] -> dh[t]/dv[t-1].
 * Out: *dk = dh[t]/dk (PLIF). Returns grad_x_seq[t] = dL/dh[t] * dh[t]/dx[t].
 */
#pragma OPENCL FP_CONTRACT OFF
#define FN(name) XPASTE(name, XPASTE(_, SFX))

static inline V FN(backward_step)(const int4 ids, const int last, const V h,
                                  const V gv, const int has_gv, const V gs, const int has_gs,
                                  const V x, const V v_pre, const real k,
                                  const real16 *PF, const real16 *PS, const real16 *PR,
                                  const real16 *PJ, V *gh, V *dv, V *dk)
{
    const V over = FN(over)(ids.s0, h, PF);
    const V psi = FN(psi)(ids.s1, over, PS);
    const V r = FN(rjac)(ids.s2, over, h, psi, PR);
    V carry = (V)(0);
    if (!last) carry = *gh * *dv;
    if (has_gv) carry = carry + gv;
    V g = carry * r;
    if (has_gs) g = g + gs * psi;
    V dx;
    *dv = FN(jac)(ids.s3, x, v_pre, k, PJ, &dx, dk);
    *gh = g;
    return g * dx;
}

#undef FN
