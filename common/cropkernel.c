/* Many crops in one call, the cascade's and the training data's: for each box, the same bytes
 * as common.box.Box.crop makes with OpenCV 4 (cv2.warpAffine, INTER_LINEAR, BORDER_REPLICATE,
 * of the box at about its own resolution, turned or not; then cv2.resize, INTER_AREA, to the
 * net's input size).
 *
 * Why: from Python each crop is two OpenCV calls and some arithmetic around them, most of the
 * time of a 15x15 patch; a cascade batch of 256 faces is 5,888 crops, a face's training data
 * 60-200. Here the loop over crops is in C, with the arithmetic of OpenCV's imgwarp.cpp and
 * resize.cpp (fixed-point bilinear taps at 1/32-pixel positions; area cells with float weights
 * added in the same order), so the bytes are the same: tests/test_cropkernel.py compares them
 * with OpenCV's on many boxes.
 * Compiled by scripts/setup.sh with -ffp-contract=off (no fused multiply-add: OpenCV's own
 * loops round each product). Loaded through ctypes (common/cropkernel.py), which lets go of
 * Python's lock during the call, so threads can share a batch.
 * On x86-64 the unturned cut and the area shrink run 4-16 pixels at a time with SSE2, which
 * every x86-64 has (no machine-specific flags): the integer taps summed down first, then along
 * x (integers, so the order does not matter), and the area's float sums four rows at a time, one
 * row per lane, each still added in OpenCV's order. -DDL_NO_SIMD (or another CPU) builds the
 * plain loops, the same bytes (a test compares the two builds).
 */
#include <math.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#if defined(__SSE2__) && !defined(DL_NO_SIMD)
#include <emmintrin.h>
#define DL_SSE2 1  /* x86-64 always has SSE2: the same integers and floats, 4-16 at a time */
#endif

enum { AB_BITS = 10, INTER_BITS = 5, COEF_BITS = 15 };

typedef struct { int di, si; float alpha; } Cell;  /* output index, input index, weight */

/* resize.cpp computeResizeAreaTab: the input cells each output pixel averages. */
static int area_cells(int ssize, int dsize, double scale, Cell *tab)
{
    int k = 0;
    for (int dx = 0; dx < dsize; dx++) {
        double fsx1 = dx * scale, fsx2 = fsx1 + scale;
        double width = scale < ssize - fsx1 ? scale : ssize - fsx1;
        int sx1 = (int)ceil(fsx1), sx2 = (int)floor(fsx2);
        if (sx2 > ssize - 1) sx2 = ssize - 1;
        if (sx1 > sx2) sx1 = sx2;
        if (sx1 - fsx1 > 1e-3) {
            tab[k].di = dx; tab[k].si = sx1 - 1; tab[k++].alpha = (float)((sx1 - fsx1) / width);
        }
        for (int sx = sx1; sx < sx2; sx++) {
            tab[k].di = dx; tab[k].si = sx; tab[k++].alpha = (float)(1.0 / width);
        }
        if (fsx2 - sx2 > 1e-3) {
            double part = fsx2 - sx2 < 1.0 ? fsx2 - sx2 : 1.0;
            if (part > width) part = width;
            tab[k].di = dx; tab[k].si = sx2; tab[k++].alpha = (float)(part / width);
        }
    }
    return k;
}

static uint8_t to_u8(float v)  /* saturate_cast<uchar>(float): round half to even, clamp */
{
    long r = lrintf(v);
    return (uint8_t)(r < 0 ? 0 : r > 255 ? 255 : r);
}

/* cv2.resize(cut, (dw, dh), interpolation=INTER_AREA) for cuts of sw x sh, dw <= sw, dh <= sh
 * (not both equal). Its tables depend on the sizes only: made for one size, used for every cut
 * of that size (dl_crops takes the cuts in order of size). */
typedef struct {
    int sw, sh, dw, dh, fast, ix, iy, slots, ny;
    Cell *xt, *yt;     /* OpenCV's cells along x and down */
    int *slot_src;     /* the cells of output column dx: slot t of dx at t * dw + dx (weight 0 where fewer) */
    float *slot_alpha;
    float *sum;        /* the output row being summed */
    float *weighed;    /* every source row weighed along x, row after row (weigh_rows) */
    uint8_t *quad;     /* SSE2: the cut's rows interleaved in fours (interleave_quads) */
} Shrink;

static void shrink_size(Shrink *z, int sw, int sh)
{
    if (z->sw == sw && z->sh == sh) return;
    double scale_x = 1. / ((double)z->dw / sw), scale_y = 1. / ((double)z->dh / sh);
    z->ix = (int)lrint(scale_x);
    z->iy = (int)lrint(scale_y);
    z->fast = fabs(scale_x - z->ix) < 2.220446049250313e-16 && fabs(scale_y - z->iy) < 2.220446049250313e-16;
    if (!z->fast && z->sw != sw) {
        int nx = area_cells(sw, z->dw, scale_x, z->xt), slots = 0, dw = z->dw;
        for (int k = 0, run = 0; k < nx; k++) {
            run = k && z->xt[k].di == z->xt[k - 1].di ? run + 1 : 1;
            if (run > slots) slots = run;
        }
        for (int i = 0; i < slots * dw; i++) { z->slot_src[i] = 0; z->slot_alpha[i] = 0.f; }
        for (int k = 0, run = 0; k < nx; k++) {
            run = k && z->xt[k].di == z->xt[k - 1].di ? run + 1 : 0;
            z->slot_src[run * dw + z->xt[k].di] = z->xt[k].si;
            z->slot_alpha[run * dw + z->xt[k].di] = z->xt[k].alpha;
        }
        z->slots = slots;
    }
    if (!z->fast && z->sh != sh)
        z->ny = area_cells(sh, z->dh, scale_y, z->yt);
    /* the x cells were made for sw only if not fast; forget them otherwise */
    z->sw = z->fast ? -1 : sw;
    z->sh = z->fast ? -1 : sh;
}

#ifdef DL_SSE2
/* The cut's rows in fours, interleaved: quad[(q sw + x) 4 + r] = src[(4 q + r) sw + x] (rows
 * past the end repeat the last), so that one column's pixels in four rows are one 32-bit load. */
static void interleave_quads(const uint8_t *src, int sw, int sh, uint8_t *quad)
{
    for (int q = 0; 4 * q < sh; q++) {
        const uint8_t *r[4];
        for (int k = 0; k < 4; k++) r[k] = src + (size_t)(4 * q + k < sh ? 4 * q + k : sh - 1) * sw;
        uint8_t *o = quad + (size_t)q * sw * 4;
        int x = 0;
        for (; x + 16 <= sw; x += 16) {
            __m128i a = _mm_loadu_si128((const __m128i *)(r[0] + x)), b = _mm_loadu_si128((const __m128i *)(r[1] + x));
            __m128i c = _mm_loadu_si128((const __m128i *)(r[2] + x)), d = _mm_loadu_si128((const __m128i *)(r[3] + x));
            __m128i ab0 = _mm_unpacklo_epi8(a, b), ab1 = _mm_unpackhi_epi8(a, b);
            __m128i cd0 = _mm_unpacklo_epi8(c, d), cd1 = _mm_unpackhi_epi8(c, d);
            _mm_storeu_si128((__m128i *)(o + 4 * x), _mm_unpacklo_epi16(ab0, cd0));
            _mm_storeu_si128((__m128i *)(o + 4 * x + 16), _mm_unpackhi_epi16(ab0, cd0));
            _mm_storeu_si128((__m128i *)(o + 4 * x + 32), _mm_unpacklo_epi16(ab1, cd1));
            _mm_storeu_si128((__m128i *)(o + 4 * x + 48), _mm_unpackhi_epi16(ab1, cd1));
        }
        for (; x < sw; x++)
            for (int k = 0; k < 4; k++) o[4 * x + k] = r[k][x];
    }
}

/* weighed[y dw + dx] = sum over slots t of cut[y][src[t dw + dx]] * alpha[t dw + dx], added in
 * slot order (OpenCV's), for every row y of the cut: four rows at a time, one in each lane. */
static void weigh_quads(const uint8_t *quad, int sw, int sh, const int *src, const float *alpha,
                        int slots, int dw, float *weighed)
{
    const __m128i zero = _mm_setzero_si128();
    for (int q = 0; 4 * q < sh; q++) {
        const uint8_t *o = quad + (size_t)q * sw * 4;
        int rows = sh - 4 * q < 4 ? sh - 4 * q : 4;
        for (int dx = 0; dx < dw; dx += 4) {
            int cols = dw - dx < 4 ? dw - dx : 4;
            __m128 acc[4];  /* column dx + c; lanes: rows 4q..4q+3 */
            for (int c = 0; c < 4; c++) {
                acc[c] = _mm_setzero_ps();
                for (int t = 0; c < cols && t < slots; t++) {
                    int32_t four;
                    memcpy(&four, o + 4 * src[t * dw + dx + c], 4);
                    __m128i v = _mm_unpacklo_epi16(_mm_unpacklo_epi8(_mm_cvtsi32_si128(four), zero), zero);
                    acc[c] = _mm_add_ps(acc[c], _mm_mul_ps(_mm_cvtepi32_ps(v), _mm_set1_ps(alpha[t * dw + dx + c])));
                }
            }
            _MM_TRANSPOSE4_PS(acc[0], acc[1], acc[2], acc[3]);  /* acc[r]: row 4q + r, columns dx.. */
            for (int r = 0; r < rows; r++) {
                float *w = weighed + (size_t)(4 * q + r) * dw + dx, four[4];
                if (cols == 4) {
                    _mm_storeu_ps(w, acc[r]);
                } else {
                    _mm_storeu_ps(four, acc[r]);
                    for (int c = 0; c < cols; c++) w[c] = four[c];
                }
            }
        }
    }
}
#endif

/* z->weighed[y dw + dx] for every row y of the cut src (sw x sh): the sum over slots t of
 * src[y][slot_src[t dw + dx]] * slot_alpha[t dw + dx], added in slot order (OpenCV's). */
static void weigh_rows(Shrink *z, const uint8_t *src, int sw, int sh)
{
    int dw = z->dw;
#ifdef DL_SSE2
    interleave_quads(src, sw, sh, z->quad);
    weigh_quads(z->quad, sw, sh, z->slot_src, z->slot_alpha, z->slots, dw, z->weighed);
#else
    for (int y = 0; y < sh; y++) {
        const uint8_t *row = src + (size_t)y * sw;
        for (int dx = 0; dx < dw; dx++) {
            float acc = 0.f;
            for (int t = 0; t < z->slots; t++) acc += row[z->slot_src[t * dw + dx]] * z->slot_alpha[t * dw + dx];
            z->weighed[(size_t)y * dw + dx] = acc;
        }
    }
#endif
}

static void add_scaled(float *sum, float beta, const float *buf, int n)  /* sum += beta * buf */
{
    int i = 0;
#ifdef DL_SSE2
    __m128 b = _mm_set1_ps(beta);
    for (; i + 4 <= n; i += 4)
        _mm_storeu_ps(sum + i, _mm_add_ps(_mm_loadu_ps(sum + i), _mm_mul_ps(b, _mm_loadu_ps(buf + i))));
#endif
    for (; i < n; i++) sum[i] += beta * buf[i];
}

static void row_to_u8(const float *v, int n, uint8_t *out)
{
    int i = 0;
#ifdef DL_SSE2
    /* cvtps2dq rounds as lrintf (to nearest, ties to even); the packs clamp to 0..255 */
    for (; i + 8 <= n; i += 8) {
        __m128i a = _mm_cvtps_epi32(_mm_loadu_ps(v + i)), b = _mm_cvtps_epi32(_mm_loadu_ps(v + i + 4));
        _mm_storel_epi64((__m128i *)(out + i), _mm_packus_epi16(_mm_packs_epi32(a, b), a));
    }
#endif
    for (; i < n; i++) out[i] = to_u8(v[i]);
}

static void shrink(Shrink *z, const uint8_t *src, int sw, int sh, uint8_t *dst)
{
    shrink_size(z, sw, sh);
    int dw = z->dw, dh = z->dh;
    if (z->fast) {  /* whole multiples: resizeAreaFast (2x2 rounds half up in integers, else a float scale) */
        int ix = z->ix, iy = z->iy;
        float scale = 1.f / (ix * iy);
        for (int dy = 0; dy < dh; dy++)
            for (int dx = 0; dx < dw; dx++) {
                int s = 0;
                for (int y = 0; y < iy; y++)
                    for (int x = 0; x < ix; x++)
                        s += src[(size_t)(dy * iy + y) * sw + dx * ix + x];
                dst[(size_t)dy * dw + dx] = ix == 2 && iy == 2 ? (uint8_t)((s + 2) >> 2) : to_u8(s * scale);
            }
        return;
    }
    /* ResizeArea_Invoker: each source row weighed along x once (each column adding its cells in
     * OpenCV's order), then summed down into its output row. */
    const Cell *yt = z->yt;
    float *sum = z->sum;
    int prev = yt[0].di;
    weigh_rows(z, src, sw, sh);
    for (int dx = 0; dx < dw; dx++) sum[dx] = 0.f;
    for (int j = 0; j < z->ny; j++) {
        float beta = yt[j].alpha;
        const float *buf = z->weighed + (size_t)yt[j].si * dw;
        if (yt[j].di != prev) {
            row_to_u8(sum, dw, dst + (size_t)prev * dw);
            for (int dx = 0; dx < dw; dx++) sum[dx] = 0.f;
            prev = yt[j].di;
        }
        add_scaled(sum, beta, buf, dw);
    }
    row_to_u8(sum, dw, dst + (size_t)prev * dw);
}

static int clampi(int v, int hi) { return v < 0 ? 0 : v > hi ? hi : v; }

/* cv2.warpAffine(img, m, (mw, mh), INTER_LINEAR, BORDER_REPLICATE) for a 2x3 matrix m (row
 * major), as imgwarp.cpp computes it: the inverse as invertAffineTransform, then for output
 * pixel (x, y) the source position in 1/1024 pixel, round(m'01 y + m'02) + round(m'00 x), and
 * down to 1/32. OpenCV weighs the four taps with a table, (1 - fy)(1 - fx) * 2^15 and so on
 * rounded, for fx, fy in 1/32 steps: each entry is exactly 32 * (32 * (1 - fy)) * (32 * fx)
 * (integers, no rounding), so the weighted sum splits into a pass along x and one along y.
 * Without rotation (the cascade's crops) the x taps are the same on every row and the y taps
 * the same along a row: warp_shifted. Turned crops: warp_rotated, pixel by pixel. */
static void warp_rotated(const uint8_t *img, int w, int h, int64_t step, const double *inv,
                         int mw, int mh, int *cols, uint8_t *cut);

/* The unturned cut with its taps summed down first, then along x: each output row blends its
 * two source rows (weights 32 - fy, fy) over the columns its taps read, edges replicated, and
 * each output pixel weighs two neighbours of that blend (32 - fx, fx). The same integers as
 * OpenCV's sum (exact products and sums in any order), and (32 s + 2^14) >> 15 = (s + 512) >> 10.
 * sx: each output column's left tap, unclamped, in lo..hi; wx: (32 - fx) | fx << 16; run and
 * blend: room for mw / 8 ints and hi - lo + 2 shorts. */
static void warp_shifted(const uint8_t *img, int w, int h, int64_t step, double a11, double b1,
                         int mw, int mh, int lo, int hi, const int *sx, const int *wx, int *run,
                         int16_t *blend, uint8_t *cut)
{
    int n = hi - lo + 2;  /* blend[j]: source column lo + j, clamped to the image */
    int first = lo < 0 ? -lo : 0, last = w - 1 - lo < n - 1 ? w - 1 - lo : n - 1;  /* inside */
#ifdef DL_SSE2
    for (int x = 0; x + 8 <= mw; x += 8) {  /* run[b]: output columns 8b..8b+7 read 8 neighbouring taps */
        int same = 1;
        for (int k = 1; k < 8; k++) same &= sx[x + k] == sx[x] + k;
        run[x >> 3] = same;
    }
    const __m128i zero = _mm_setzero_si128(), half = _mm_set1_epi32(512);
#else
    (void)run;
#endif
    for (int y = 0; y < mh; y++) {
        int fy = ((int)lrint((a11 * y + b1) * (1 << AB_BITS)) + (1 << (AB_BITS - INTER_BITS - 1)))
                 >> (AB_BITS - INTER_BITS);
        const uint8_t *r0 = img + clampi(fy >> INTER_BITS, h - 1) * step;
        const uint8_t *r1 = img + clampi((fy >> INTER_BITS) + 1, h - 1) * step;
        int wd = fy & 31, wu = 32 - wd;
        int16_t edge0 = (int16_t)(wu * r0[0] + wd * r1[0]), edge1 = (int16_t)(wu * r0[w - 1] + wd * r1[w - 1]);
        int j = 0;
        for (; j < n && j < first; j++) blend[j] = edge0;
#ifdef DL_SSE2
        const __m128i mu = _mm_set1_epi16((short)wu), md = _mm_set1_epi16((short)wd);
        for (; j + 8 <= last + 1; j += 8) {  /* j..j+7 inside the row: no read past it */
            __m128i p = _mm_unpacklo_epi8(_mm_loadl_epi64((const __m128i *)(r0 + lo + j)), zero);
            __m128i q = _mm_unpacklo_epi8(_mm_loadl_epi64((const __m128i *)(r1 + lo + j)), zero);
            _mm_storeu_si128((__m128i *)(blend + j), _mm_add_epi16(_mm_mullo_epi16(p, mu), _mm_mullo_epi16(q, md)));
        }
#endif
        for (; j <= last; j++) blend[j] = (int16_t)(wu * r0[lo + j] + wd * r1[lo + j]);
        for (; j < n; j++) blend[j] = edge1;
        uint8_t *out = cut + (size_t)y * mw;
        int x = 0;
#ifdef DL_SSE2
        for (; x + 8 <= mw; x += 8) {
            if (run[x >> 3]) {  /* taps at 8 neighbouring columns: the pairs from two loads */
                const int16_t *b = blend + (sx[x] - lo);
                __m128i v0 = _mm_loadu_si128((const __m128i *)b), v1 = _mm_loadu_si128((const __m128i *)(b + 1));
                __m128i s0 = _mm_madd_epi16(_mm_unpacklo_epi16(v0, v1), _mm_loadu_si128((const __m128i *)(wx + x)));
                __m128i s1 = _mm_madd_epi16(_mm_unpackhi_epi16(v0, v1), _mm_loadu_si128((const __m128i *)(wx + x + 4)));
                s0 = _mm_srai_epi32(_mm_add_epi32(s0, half), 10);
                s1 = _mm_srai_epi32(_mm_add_epi32(s1, half), 10);
                __m128i v = _mm_packs_epi32(s0, s1);
                _mm_storel_epi64((__m128i *)(out + x), _mm_packus_epi16(v, v));
                continue;
            }
            int32_t t[8];
            for (int k = 0; k < 8; k++) memcpy(&t[k], blend + (sx[x + k] - lo), 4);  /* the pair j, j+1 */
            __m128i s0 = _mm_madd_epi16(_mm_setr_epi32(t[0], t[1], t[2], t[3]), _mm_loadu_si128((const __m128i *)(wx + x)));
            __m128i s1 = _mm_madd_epi16(_mm_setr_epi32(t[4], t[5], t[6], t[7]), _mm_loadu_si128((const __m128i *)(wx + x + 4)));
            s0 = _mm_srai_epi32(_mm_add_epi32(s0, half), 10);
            s1 = _mm_srai_epi32(_mm_add_epi32(s1, half), 10);
            __m128i v = _mm_packs_epi32(s0, s1);
            _mm_storel_epi64((__m128i *)(out + x), _mm_packus_epi16(v, v));
        }
#endif
        for (; x < mw; x++) {
            const int16_t *b = blend + (sx[x] - lo);
            out[x] = (uint8_t)(((wx[x] & 0xffff) * b[0] + (wx[x] >> 16) * b[1] + 512) >> 10);
        }
    }
}

static void warp_cut(const uint8_t *img, int w, int h, int64_t step, const double *m,
                     int mw, int mh, int *cols, uint8_t *cut)
{
    double d = m[0] * m[4] - m[1] * m[3];
    d = d != 0 ? 1. / d : 0;
    double a00 = m[4] * d, a11 = m[0] * d, a01 = -m[1] * d, a10 = -m[3] * d;
    double b0 = -a00 * m[2] - a01 * m[5], b1 = -a10 * m[2] - a11 * m[5];
    double inv[6] = {a00, a01, b0, a10, a11, b1};
    if (a01 != 0 || a10 != 0 || mw <= 0) {
        warp_rotated(img, w, h, step, inv, mw, mh, cols, cut);
        return;
    }
    int x_start = (int)lrint(b0 * (1 << AB_BITS)) + (1 << (AB_BITS - INTER_BITS - 1));
    /* per output column: its left tap (not clamped) and the taps' weights 32 - fx | fx << 16 */
    int *sx = cols, *wx = cols + mw;
    int lo = INT32_MAX, hi = INT32_MIN;
    for (int x = 0; x < mw; x++) {
        int fx = (x_start + (int)lrint(a00 * x * (1 << AB_BITS))) >> (AB_BITS - INTER_BITS);
        sx[x] = fx >> INTER_BITS;
        wx[x] = (32 - (fx & 31)) | (fx & 31) << 16;
        if (sx[x] < lo) lo = sx[x];
        if (sx[x] > hi) hi = sx[x];
    }
    if ((int64_t)hi - lo + 2 > 4 * (int64_t)mw) {  /* taps too far apart for the blended row in cols */
        warp_rotated(img, w, h, step, inv, mw, mh, cols, cut);  /* the same arithmetic, pixel by pixel */
        return;
    }
    warp_shifted(img, w, h, step, a11, b1, mw, mh, lo, hi, sx, wx, cols + 2 * mw, (int16_t *)(cols + 4 * mw), cut);
}

static void warp_rotated(const uint8_t *img, int w, int h, int64_t step, const double *inv,
                         int mw, int mh, int *cols, uint8_t *cut)
{
    int *dx = cols, *dy = cols + mw;  /* round(m'00 x), round(m'10 x) in 1/1024 pixel */
    for (int x = 0; x < mw; x++) {
        dx[x] = (int)lrint(inv[0] * x * (1 << AB_BITS));
        dy[x] = (int)lrint(inv[3] * x * (1 << AB_BITS));
    }
    for (int y = 0; y < mh; y++) {
        int x0 = (int)lrint((inv[1] * y + inv[2]) * (1 << AB_BITS)) + (1 << (AB_BITS - INTER_BITS - 1));
        int y0 = (int)lrint((inv[4] * y + inv[5]) * (1 << AB_BITS)) + (1 << (AB_BITS - INTER_BITS - 1));
        uint8_t *out = cut + (size_t)y * mw;
        for (int x = 0; x < mw; x++) {
            int fx = (x0 + dx[x]) >> (AB_BITS - INTER_BITS), fy = (y0 + dy[x]) >> (AB_BITS - INTER_BITS);
            int sx = fx >> INTER_BITS, sy = fy >> INTER_BITS;
            int xa = clampi(sx, w - 1), xb = clampi(sx + 1, w - 1);
            const uint8_t *r0 = img + clampi(sy, h - 1) * step, *r1 = img + clampi(sy + 1, h - 1) * step;
            int wx = fx & 31, wy = fy & 31;
            int v = 32 * ((32 - wy) * ((32 - wx) * r0[xa] + wx * r0[xb]) + wy * ((32 - wx) * r1[xa] + wx * r1[xb]));
            out[x] = (uint8_t)((v + (1 << (COEF_BITS - 1))) >> COEF_BITS);
        }
    }
}

/* n crops: crop i from image index[i] (pointers, widths, heights, row steps in bytes), cut at
 * mid_w[i] x mid_h[i] by the 2x3 matrix mats[6 i ..] (as warpAffine takes it), shrunk to
 * out_w x out_h into out + i * out_w * out_h.
 * Returns 0, or -1 when memory runs out. */
static int by_size(const void *a, const void *b)
{
    int64_t x = *(const int64_t *)a, y = *(const int64_t *)b;
    return (x > y) - (x < y);
}

int dl_crops(int n, const uint8_t *const *images, const int *widths, const int *heights,
             const int64_t *steps, const int64_t *index, const double *mats, const int *mid_w,
             const int *mid_h, int out_w, int out_h, uint8_t *out)
{
    int max_w = out_w, max_h = out_h;
    for (int i = 0; i < n; i++) {
        if (mid_w[i] > max_w) max_w = mid_w[i];
        if (mid_h[i] > max_h) max_h = mid_h[i];
    }
    int max_slots = max_w / out_w + 2;
    Shrink z = {-1, -1, out_w, out_h, 0, 0, 0, 0, 0, NULL, NULL, NULL, NULL, NULL, NULL, NULL};
    uint8_t *cut = malloc((size_t)max_w * max_h);
    int *cols = malloc(sizeof(int) * 6 * (size_t)max_w);
    int64_t *order = malloc(sizeof(int64_t) * (size_t)(n > 0 ? n : 1));
    z.xt = malloc(sizeof(Cell) * (size_t)(2 * max_w + 2));
    z.yt = malloc(sizeof(Cell) * (size_t)(2 * max_h + 2));
    z.slot_src = malloc(sizeof(int) * (size_t)(max_slots * out_w));
    z.slot_alpha = malloc(sizeof(float) * (size_t)(max_slots * out_w + out_w));
    z.weighed = malloc(sizeof(float) * (size_t)max_h * out_w);
#ifdef DL_SSE2
    z.quad = malloc((size_t)(max_h + 3) / 4 * 4 * max_w);
    int ok = z.quad != NULL;
#else
    int ok = 1;
#endif
    ok = ok && cut && cols && order && z.xt && z.yt && z.slot_src && z.slot_alpha && z.weighed;
    if (ok) {
        z.sum = z.slot_alpha + max_slots * out_w;
        /* in order of cut size, so that the area tables are made once per size */
        for (int i = 0; i < n; i++) order[i] = ((int64_t)mid_w[i] << 42) | ((int64_t)mid_h[i] << 21) | i;
        qsort(order, (size_t)n, sizeof(int64_t), by_size);
    }
    for (int r = 0; ok && r < n; r++) {
        int i = (int)(order[r] & ((1 << 21) - 1));
        int64_t j = index[i];
        uint8_t *dst = out + (size_t)i * out_w * out_h;
        int whole = mid_w[i] == out_w && mid_h[i] == out_h;
        warp_cut(images[j], widths[j], heights[j], steps[j], mats + 6 * i, mid_w[i], mid_h[i], cols,
                 whole ? dst : cut);
        if (!whole)
            shrink(&z, cut, mid_w[i], mid_h[i], dst);
    }
    free(cut); free(cols); free(order); free(z.xt); free(z.yt); free(z.slot_src); free(z.slot_alpha);
    free(z.quad); free(z.weighed);
    return ok ? 0 : -1;
}
