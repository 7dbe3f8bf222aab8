#version 450
/* [res = a + b, rounded to the storage type;] out = (x - mean) * rstd * w
 * + bias over C, x = res or a. One workgroup per row. */
#include "common.glsl"
layout(local_size_x = 256) in;
layout(push_constant) uniform PC { uint64_t out_, mean, rstd, a, b, res, w, bias; int N, C; float eps; } p;
void main() {
    uint row = group_id(), lid = gl_LocalInvocationID.x;
    if (row >= uint(p.N)) return;
    ACTs xa = act_row(p.a, row, p.C), xs = p.b != 0 ? act_row(p.res, row, p.C) : xa;
    float sum = 0.0;
    if (p.b != 0) {
        ACTs xb = act_row(p.b, row, p.C);
        for (uint c = lid; c < uint(p.C); c += 256) {
            float x = rnd(float(xa.v[c]) + float(xb.v[c]));
            xs.v[c] = ACT_T(x);
            sum += x;
        }
    } else {
        for (uint c = lid; c < uint(p.C); c += 256) sum += float(xa.v[c]);
    }
    float mean = block_sum(sum) / float(p.C);
    float ss = 0.0;
    for (uint c = lid; c < uint(p.C); c += 256) {
        float d = float(xs.v[c]) - mean;
        ss += d * d;
    }
    float rstd = 1.0 / sqrt(block_sum(ss) / float(p.C) + p.eps);
    ACTs o = act_row(p.out_, row, p.C), w = ACTs(p.w), bi = ACTs(p.bias);
    for (uint c = lid; c < uint(p.C); c += 256)
        o.v[c] = ACT_T((float(xs.v[c]) - mean) * rstd * float(w.v[c]) + float(bi.v[c]));
    if (lid == 0) {
        if (p.mean != 0) F32s(p.mean).v[row] = mean;
        if (p.rstd != 0) F32s(p.rstd).v[row] = rstd;
    }
}
