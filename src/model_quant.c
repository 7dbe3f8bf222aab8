/*
 * model_quant.c - int8 models: moving tensors in and out of their int8
 * form, and converting a whole model (gpt_model_quantize). The layout of a
 * quantised model is model.c's (layout_params with quant); the format of a
 * quantised matrix is quant.h's; the products are the backend's
 * matmul_q8_forward.
 */
#include <stdlib.h>
#include <string.h>

#include "model.h"
#include "quant.h"
#include "util.h"

static void shape_of(const gpt_tensor_info *t, int *rows, int *cols) {
    *rows = t->shape[0];
    *cols = t->ndim == 2 ? t->shape[1] : 1;
}

static int not_quantised(const gpt_model *m, int i, gpt_error *err) {
    if (i < 0 || i >= m->ntensors)
        return gpt_fail(err, GPT_ERR_INVALID, "tensor index %d out of range", i);
    if (m->qoff[i] == GPT_NO_OFFSET)
        return gpt_fail(err, GPT_ERR_INVALID, "tensor %s has no int8 form in this model",
                        m->tinfo[i].name);
    return GPT_OK;
}

int gpt_model_get_tensor_q8(gpt_model *m, int i, void *q8, gpt_error *err) {
    int rc = not_quantised(m, i, err), rows, cols;
    if (rc) return rc;
    shape_of(&m->tinfo[i], &rows, &cols);
    m->be->ops->download(m->be, q8, (char *)m->qw + m->qoff[i], gpt_q8_bytes(rows, cols),
                         GPT_CLS_Q8);
    return gpt_model_backend_error(m, err);
}

int gpt_model_get_tensor_dequant(gpt_model *m, int i, float *dst, gpt_error *err) {
    int rows, cols;
    shape_of(&m->tinfo[i], &rows, &cols);
    void *q = malloc(gpt_q8_bytes(rows, cols));
    if (!q) return gpt_fail(err, GPT_ERR_NOMEM, "out of memory");
    int rc = gpt_model_get_tensor_q8(m, i, q, err);
    if (!rc) gpt_q8_dequantize(dst, q, rows, cols);
    free(q);
    return rc;
}

/* Uploads a checked int8 tensor; a tensor that also lives in params (wte,
 * for the embedding's lookup) gets the dequantised values there. */
static int upload_q8(gpt_model *m, int i, const void *q8, gpt_error *err) {
    int rows, cols;
    shape_of(&m->tinfo[i], &rows, &cols);
    m->be->ops->upload(m->be, (char *)m->qw + m->qoff[i], q8, gpt_q8_bytes(rows, cols), GPT_CLS_Q8);
    if (m->toff[i] != GPT_NO_OFFSET) {
        float *w = malloc(m->tinfo[i].numel * sizeof(float));
        if (!w) return gpt_fail(err, GPT_ERR_NOMEM, "out of memory");
        gpt_q8_dequantize(w, q8, rows, cols);
        m->be->ops->upload(m->be, gpt_at(m, m->params, m->toff[i], GPT_CLS_PARAM), w,
                           m->tinfo[i].numel, GPT_CLS_PARAM);
        free(w);
    }
    return gpt_model_backend_error(m, err);
}

int gpt_model_set_tensor_q8(gpt_model *m, int i, const void *q8, gpt_error *err) {
    int rc = not_quantised(m, i, err), rows, cols;
    if (rc) return rc;
    shape_of(&m->tinfo[i], &rows, &cols);
    char why[160];
    if (gpt_q8_check(q8, rows, cols, why, sizeof why))
        return gpt_fail(err, GPT_ERR_INVALID, "tensor %s: %s", m->tinfo[i].name, why);
    return upload_q8(m, i, q8, err);
}

int gpt_model_set_tensor_quant(gpt_model *m, int i, const float *src, gpt_error *err) {
    int rows, cols;
    shape_of(&m->tinfo[i], &rows, &cols);
    void *q = malloc(gpt_q8_bytes(rows, cols));
    if (!q) return gpt_fail(err, GPT_ERR_NOMEM, "out of memory");
    int rc = gpt_q8_quantize(q, src, rows, cols, m->tinfo[i].name, err);
    if (!rc) rc = upload_q8(m, i, q, err);
    free(q);
    return rc;
}

int gpt_model_quantize(gpt_model *m, gpt_quant q, gpt_error *err) {
    if (q != GPT_QUANT_NONE && q != GPT_QUANT_INT8)
        return gpt_fail(err, GPT_ERR_INVALID, "unknown quantisation %d", (int)q);
    if ((int)q == m->quant) return GPT_OK;
    /* A new model with the other layout, filled tensor by tensor through
     * host fp32 (which quantises or dequantises), then swapped in. */
    gpt_runtime rt = m->rt;
    rt.device = m->be->name;
    gpt_model *n;
    int rc = gpt_model_build_quant(&n, &m->cfg, &rt, q, err);
    if (rc) return rc;
    float *buf = malloc(gpt_model_max_tensor(m) * sizeof(float));
    if (!buf) rc = gpt_fail(err, GPT_ERR_NOMEM, "out of memory quantising the model");
    for (int i = 0; i < m->ntensors && !rc; i++)
        if (!(rc = gpt_model_get_tensor(m, i, buf, err))) rc = gpt_model_set_tensor(n, i, buf, err);
    free(buf);
    if (!rc) rc = gpt_model_set_tokenizer(n, m->tokenizer, m->tok_blob, m->tok_blob_len, err);
    if (rc) {
        gpt_model_free(n);
        return rc;
    }
    n->step = m->step;
    n->opt_step = m->opt_step;
    gpt_model tmp = *m;
    *m = *n;
    *n = tmp;
    gpt_model_free(n);
    return GPT_OK;
}

const char *gpt_model_quant(const gpt_model *m) { return m->quant ? "int8" : "none"; }

const char *gpt_model_quant_kernel(const gpt_model *m) {
    return m->be->ops->q8_kernel ? m->be->ops->q8_kernel(m->be) : NULL;
}
