/* The chunked layout's last partial vector: its `rest` (< W) lanes are
 * gathered into a vector padded with zeros, go through the same vector
 * formulas as the full vectors, and the first `rest` lanes are scattered back,
 * so that a chunked program needs no scalar form of the formulas. */
static inline realW load_lanes(const __global real *p, const int rest)
{
    real lanes[W];
    for (int l = 0; l < W; ++l) lanes[l] = l < rest ? p[l] : (real)0;
    return XPASTE(vload, W)(0, lanes);
}

static inline void store_lanes(const realW value, __global real *p, const int rest)
{
    real lanes[W];
    XPASTE(vstore, W)(value, 0, lanes);
    for (int l = 0; l < rest; ++l) p[l] = lanes[l];
}

/* acc + lane 0 + lane 1 + ... + lane rest-1, in that order */
static inline real add_lanes(real acc, const realW value, const int rest)
{
    real lanes[W];
    XPASTE(vstore, W)(value, 0, lanes);
    for (int l = 0; l < rest; ++l) acc = acc + lanes[l];
    return acc;
}
