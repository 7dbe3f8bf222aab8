#version 450
/* AdamW (backend.h gives the rules): the norm is sqrt(stats->grad_sumsq),
 * which sumsq wrote (summed over ranks by the model), so every workgroup
 * agrees on it and on skipping; workgroup 0 writes the statistics and, in
 * fp16 training,
 * steers the loss scale: an overflow (non-finite norm, finite loss)
 * quarters it, 1000 good steps in a row double it. Gradients are zeroed
 * whether or not the update is skipped. */
#include "common.glsl"
layout(local_size_x = 256) in;
layout(push_constant) uniform PC {
    uint64_t params, master, grad, m, v, hyper, stats, state, n, n_decay;
    int dynamic_scale;
} p;
void main() {
    uint lid = gl_LocalInvocationID.x, g = group_id();
    F32s st = F32s(p.stats), hy = F32s(p.hyper);
    float norm = sqrt(st.v[3]);
    float loss = st.v[0];
    bool skip = isnan(norm) || isinf(norm) || isnan(loss) || isinf(loss);
    if (g == 0 && lid == 0) {
        st.v[1] = norm;
        st.v[2] = skip ? 1.0 : 0.0;
        if (p.dynamic_scale != 0 && !isnan(loss) && !isinf(loss)) {
            F32s sc = F32s(p.state);
            if (skip) {
                sc.v[0] = max(sc.v[0] * 0.25, 1.0);
                sc.v[1] = 0.0;
            } else if (sc.v[1] + 1.0 >= 1000.0) {
                sc.v[0] = min(sc.v[0] * 2.0, 16777216.0);
                sc.v[1] = 0.0;
            } else {
                sc.v[1] += 1.0;
            }
        }
    }
    float lr = hy.v[0], b1 = hy.v[1], b2 = hy.v[2], eps = hy.v[3], wd = hy.v[4], clip = hy.v[5];
    float step_size = lr / hy.v[6], bc2_sqrt = sqrt(hy.v[7]), decay = 1.0 - lr * wd;
    float cs = clip > 0.0 ? min(1.0, clip / (norm + 1e-6)) : 1.0;
    uint64_t stride = uint64_t(gl_NumWorkGroups.x) * gl_NumWorkGroups.y * 256;
    for (uint64_t i = uint64_t(g) * 256 + lid; i < p.n; i += stride) {
        F32s gr = f32_at(p.grad, i);
        if (!skip) {
            float gi = gr.v[0] * cs;
            F32s mm = f32_at(p.m, i), vv = f32_at(p.v, i);
            float mi = mm.v[0] + (1.0 - b1) * (gi - mm.v[0]);
            float vi = vv.v[0] * b2 + (1.0 - b2) * (gi * gi);
            mm.v[0] = mi;
            vv.v[0] = vi;
            float pv = p.master != 0 ? f32_at(p.master, i).v[0] : float(act_at(p.params, i).v[0]);
            if (i < p.n_decay) pv *= decay;
            pv -= step_size * (mi / (sqrt(vi) / bc2_sqrt + eps));
            if (p.master != 0) f32_at(p.master, i).v[0] = pv;
            act_at(p.params, i).v[0] = ACT_T(pv);
        }
        gr.v[0] = 0.0;
    }
}
