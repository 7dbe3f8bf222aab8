#version 450
/* The second half of attn_kv_split.comp: for each (row, head), merges the
 * chunks' partial results in chunk order, out = sum_c exp(m_c - M) o_c /
 * sum_c exp(m_c - M) l_c with M the largest m_c, and writes the head's HS
 * outputs. A workgroup per (row, head); rows with p outside [0, S) are
 * left untouched. */
#include "common.glsl"
layout(local_size_x = 64) in;
layout(push_constant) uniform PC { uint64_t out_, part, pos0; int B, Tq, S, C, NH, HS, NS; } p;

void main() {
    uint lid = gl_LocalInvocationID.x;
    int h = int(gl_WorkGroupID.x % uint(p.NH)), row = int(gl_WorkGroupID.x / uint(p.NH));
    if (row >= p.B * p.Tq) return;
    int b = row / p.Tq, t = row % p.Tq;
    int pos = (p.pos0 != 0 ? I32s(p.pos0).v[b] : 0) + t;
    if (pos < 0 || pos >= p.S) return;
    int n = pos / 64 + 1; /* the chunks that hold keys */
    uint rec0 = (uint(row) * uint(p.NH) + uint(h)) * uint(p.NS);
    uint stride = uint(p.HS + 2);
    F32s part = F32s(p.part + uint64_t(rec0) * uint64_t(stride) * 4);
    ACTs orow = act_row(p.out_, uint(row), p.C);
    for (int d = int(lid); d < p.HS; d += 64)
        orow.v[h * p.HS + d] = ACT_T(kv_merge(part, stride, n, d));
}
