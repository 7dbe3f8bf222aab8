#version 450
/* dwte[id,:] += sum of dout over the positions holding id, / loss scale.
 * Deterministic without float atomics: the workgroup of the first position
 * of each id gathers every later position with that id (in position
 * order) and adds once; workgroups of repeated ids leave at once. */
#include "common.glsl"
layout(local_size_x = 256) in;
layout(push_constant) uniform PC { uint64_t dwte, tok, dout, scale; int N, C, Vp; } p;
shared int tk[256];
shared uint hits[256];
shared uint sg_count[64];
shared uint dup;
#define CB 8 /* channel blocks of 256 held per thread: C <= 2048 in one pass */
void main() {
    uint n = group_id(), lid = gl_LocalInvocationID.x;
    if (n >= uint(p.N)) return;
    I32s tok = I32s(p.tok);
    int id = tok.v[n];
    if (id < 0 || id >= p.Vp) return;
    if (lid == 0) dup = 0;
    barrier();
    for (uint m = lid; m < n; m += 256)
        if (tok.v[m] == id) atomicOr(dup, 1u);
    barrier();
    if (dup != 0) return;
    float inv = 1.0 / F32s(p.scale).v[0];
    for (uint c0 = 0; c0 < uint(p.C); c0 += 256 * CB) {
        float acc[CB];
        for (int k = 0; k < CB; k++) acc[k] = 0.0;
        for (uint m0 = n; m0 < uint(p.N); m0 += 256) {
            uint m = m0 + lid;
            uint hit = m < uint(p.N) && tok.v[m] == id ? 1u : 0u;
            /* ordered compaction of this tile's hits */
            uint before = subgroupExclusiveAdd(hit), total_sg = subgroupAdd(hit);
            if (subgroupElect()) sg_count[gl_SubgroupID] = total_sg;
            barrier();
            uint base = 0, total = 0;
            for (uint s = 0; s < gl_NumSubgroups; s++) {
                if (s < gl_SubgroupID) base += sg_count[s];
                total += sg_count[s];
            }
            if (hit != 0) hits[base + before] = m;
            barrier();
            for (uint j = 0; j < total; j++) {
                ACTs d = act_row(p.dout, hits[j], p.C);
                for (int k = 0; k < CB; k++) {
                    uint c = c0 + uint(k) * 256 + lid;
                    if (c < uint(p.C)) acc[k] += float(d.v[c]);
                }
            }
            barrier();
        }
        F32s w = f32_row(p.dwte, id, p.C);
        for (int k = 0; k < CB; k++) {
            uint c = c0 + uint(k) * 256 + lid;
            if (c < uint(p.C)) w.v[c] += acc[k] * inv;
        }
    }
}
