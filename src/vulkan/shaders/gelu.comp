#version 450
#include "common.glsl"
layout(local_size_x = 256) in;
layout(push_constant) uniform PC { uint64_t out_, in_, n; } p;
void main() {
    uint64_t stride = uint64_t(gl_NumWorkGroups.x) * gl_NumWorkGroups.y * 256;
    for (uint64_t i = uint64_t(group_id()) * 256 + gl_LocalInvocationID.x; i < p.n; i += stride)
        act_at(p.out_, i).v[0] = ACT_T(gelu(float(act_at(p.in_, i).v[0])));
}
