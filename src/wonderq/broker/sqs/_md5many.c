/* MD5 of many messages at once: the digests SQS puts beside every body it sends
 * and receives (MD5OfMessageBody, MD5OfBody), sixteen at a time in the lanes of
 * AVX2's 256-bit registers (two registers of eight lanes, stepping together). A
 * batch of ten 1 KiB bodies takes a fifth of the time of ten one-at-a-time
 * digests, which were a seventh of the broker's work for a SendMessageBatch.
 *
 * The lanes hash in step, block by block; a lane whose message has no block left
 * keeps its state (the blend below), so messages of any lengths share a pass.
 * Each message's last one or two blocks (its remainder, the 0x80 byte, the zeros
 * and its length in bits) are built in a small buffer first.
 *
 * hexdigests(bodies: Sequence[bytes]) -> list[str] | None: their digests, in
 * lower-case hex, as hashlib's hexdigest() gives them; None where the lanes would be
 * slower than one digest at a time (one body, or one body most of the bytes). LANES is 16 where this CPU has AVX2
 * and 0 elsewhere; then hexdigests raises and the caller hashes one by one
 * (wonderq/broker/sqs/message_attributes.py). The tests compare both against
 * hashlib for every length up to a few blocks and for mixed batches. */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

#if defined(__x86_64__) && defined(__GNUC__)
#include <immintrin.h>
#define HAVE_LANES 1
#define LANES 16

typedef __m256i v8;

static const uint32_t K[64] = {
    0xd76aa478, 0xe8c7b756, 0x242070db, 0xc1bdceee, 0xf57c0faf, 0x4787c62a, 0xa8304613, 0xfd469501,
    0x698098d8, 0x8b44f7af, 0xffff5bb1, 0x895cd7be, 0x6b901122, 0xfd987193, 0xa679438e, 0x49b40821,
    0xf61e2562, 0xc040b340, 0x265e5a51, 0xe9b6c7aa, 0xd62f105d, 0x02441453, 0xd8a1e681, 0xe7d3fbc8,
    0x21e1cde6, 0xc33707d6, 0xf4d50d87, 0x455a14ed, 0xa9e3e905, 0xfcefa3f8, 0x676f02d9, 0x8d2a4c8a,
    0xfffa3942, 0x8771f681, 0x6d9d6122, 0xfde5380c, 0xa4beea44, 0x4bdecfa9, 0xf6bb4b60, 0xbebfbc70,
    0x289b7ec6, 0xeaa127fa, 0xd4ef3085, 0x04881d05, 0xd9d4d039, 0xe6db99e5, 0x1fa27cf8, 0xc4ac5665,
    0xf4292244, 0x432aff97, 0xab9423a7, 0xfc93a039, 0x655b59c3, 0x8f0ccc92, 0xffeff47d, 0x85845dd1,
    0x6fa87e4f, 0xfe2ce6e0, 0xa3014314, 0x4e0811a1, 0xf7537e82, 0xbd3af235, 0x2ad7d2bb, 0xeb86d391,
};

/* K, each constant in all eight lanes: an operand of the add, where a broadcast would be two more steps */
static v8 KV[64];

#define ADD(x, y) _mm256_add_epi32((x), (y))
#define XOR(x, y) _mm256_xor_si256((x), (y))
#define AND(x, y) _mm256_and_si256((x), (y))
#define OR(x, y) _mm256_or_si256((x), (y))
#define ROTL(x, s) OR(_mm256_slli_epi32((x), (s)), _mm256_srli_epi32((x), 32 - (s)))
#define F(b, c, d) XOR((d), AND((b), XOR((c), (d))))
#define G(b, c, d) XOR((c), AND((d), XOR((b), (c))))
#define H(b, c, d) XOR(XOR((b), (c)), (d))
#define I(b, c, d) XOR((c), OR((b), XOR((d), ones)))
/* One of the 64 steps, in each half: a = b + ((a + fn(b, c, d) + M[g] + K[i]) <<< s) */
#define STEP(fn, a, b, c, d, g, i, s)                                                                   \
    for (int h = 0; h < count; h++)                                                                 \
        a[h] = ADD(b[h], ROTL(ADD(ADD(a[h], fn(b[h], c[h], d[h])), ADD(m[h][g], _mm256_load_si256(&KV[i]))), s))

/* One 64-byte block of each lane (m[half][w]: word w of the half's eight lanes) into state.
 * Two halves (sixteen lanes) step together: their steps do not wait on each other, so the
 * CPU runs them side by side where one half would wait on each step's result. The 64 steps
 * are written out as RFC 1321 writes them: a loop over tables of their words and shifts, tried
 * instead, ran 25-35 % slower (bench/README.md, "Late run"). */
#define COMPRESS(name, HALVES)                                                                         \
    __attribute__((target("avx2"))) static void name(v8 state[][4], const v8 m[][16]) {                \
        const v8 ones = _mm256_set1_epi32(-1);                                                         \
        enum { count = HALVES };                                                                       \
        v8 a[HALVES], b[HALVES], c[HALVES], d[HALVES];                                                 \
        for (int h = 0; h < HALVES; h++) a[h] = state[h][0], b[h] = state[h][1], c[h] = state[h][2],   \
                                         d[h] = state[h][3];                                           \
        STEP(F, a, b, c, d, 0, 0, 7);    STEP(F, d, a, b, c, 1, 1, 12);   STEP(F, c, d, a, b, 2, 2, 17);  \
        STEP(F, b, c, d, a, 3, 3, 22);   STEP(F, a, b, c, d, 4, 4, 7);    STEP(F, d, a, b, c, 5, 5, 12);  \
        STEP(F, c, d, a, b, 6, 6, 17);   STEP(F, b, c, d, a, 7, 7, 22);   STEP(F, a, b, c, d, 8, 8, 7);   \
        STEP(F, d, a, b, c, 9, 9, 12);   STEP(F, c, d, a, b, 10, 10, 17); STEP(F, b, c, d, a, 11, 11, 22);\
        STEP(F, a, b, c, d, 12, 12, 7);  STEP(F, d, a, b, c, 13, 13, 12); STEP(F, c, d, a, b, 14, 14, 17);\
        STEP(F, b, c, d, a, 15, 15, 22);                                                               \
        STEP(G, a, b, c, d, 1, 16, 5);   STEP(G, d, a, b, c, 6, 17, 9);   STEP(G, c, d, a, b, 11, 18, 14);\
        STEP(G, b, c, d, a, 0, 19, 20);  STEP(G, a, b, c, d, 5, 20, 5);   STEP(G, d, a, b, c, 10, 21, 9); \
        STEP(G, c, d, a, b, 15, 22, 14); STEP(G, b, c, d, a, 4, 23, 20);  STEP(G, a, b, c, d, 9, 24, 5);  \
        STEP(G, d, a, b, c, 14, 25, 9);  STEP(G, c, d, a, b, 3, 26, 14);  STEP(G, b, c, d, a, 8, 27, 20); \
        STEP(G, a, b, c, d, 13, 28, 5);  STEP(G, d, a, b, c, 2, 29, 9);   STEP(G, c, d, a, b, 7, 30, 14); \
        STEP(G, b, c, d, a, 12, 31, 20);                                                               \
        STEP(H, a, b, c, d, 5, 32, 4);   STEP(H, d, a, b, c, 8, 33, 11);  STEP(H, c, d, a, b, 11, 34, 16);\
        STEP(H, b, c, d, a, 14, 35, 23); STEP(H, a, b, c, d, 1, 36, 4);   STEP(H, d, a, b, c, 4, 37, 11); \
        STEP(H, c, d, a, b, 7, 38, 16);  STEP(H, b, c, d, a, 10, 39, 23); STEP(H, a, b, c, d, 13, 40, 4); \
        STEP(H, d, a, b, c, 0, 41, 11);  STEP(H, c, d, a, b, 3, 42, 16);  STEP(H, b, c, d, a, 6, 43, 23); \
        STEP(H, a, b, c, d, 9, 44, 4);   STEP(H, d, a, b, c, 12, 45, 11); STEP(H, c, d, a, b, 15, 46, 16);\
        STEP(H, b, c, d, a, 2, 47, 23);                                                                \
        STEP(I, a, b, c, d, 0, 48, 6);   STEP(I, d, a, b, c, 7, 49, 10);  STEP(I, c, d, a, b, 14, 50, 15);\
        STEP(I, b, c, d, a, 5, 51, 21);  STEP(I, a, b, c, d, 12, 52, 6);  STEP(I, d, a, b, c, 3, 53, 10); \
        STEP(I, c, d, a, b, 10, 54, 15); STEP(I, b, c, d, a, 1, 55, 21);  STEP(I, a, b, c, d, 8, 56, 6);  \
        STEP(I, d, a, b, c, 15, 57, 10); STEP(I, c, d, a, b, 6, 58, 15);  STEP(I, b, c, d, a, 13, 59, 21);\
        STEP(I, a, b, c, d, 4, 60, 6);   STEP(I, d, a, b, c, 11, 61, 10); STEP(I, c, d, a, b, 2, 62, 15); \
        STEP(I, b, c, d, a, 9, 63, 21);                                                                \
        for (int h = 0; h < HALVES; h++) {                                                             \
            state[h][0] = ADD(state[h][0], a[h]);                                                      \
            state[h][1] = ADD(state[h][1], b[h]);                                                      \
            state[h][2] = ADD(state[h][2], c[h]);                                                      \
            state[h][3] = ADD(state[h][3], d[h]);                                                      \
        }                                                                                              \
    }
COMPRESS(compress_one, 1)
COMPRESS(compress_two, 2)

/* Words w of eight rows of eight words, as eight vectors (an 8x8 transpose). */
__attribute__((target("avx2"))) static void transpose(const v8 r[8], v8 out[8]) {
    v8 t[8], u[8];
    for (int i = 0; i < 4; i++) {
        t[2 * i] = _mm256_unpacklo_epi32(r[2 * i], r[2 * i + 1]);
        t[2 * i + 1] = _mm256_unpackhi_epi32(r[2 * i], r[2 * i + 1]);
    }
    for (int i = 0; i < 2; i++) {
        u[4 * i] = _mm256_unpacklo_epi64(t[4 * i], t[4 * i + 2]);
        u[4 * i + 1] = _mm256_unpackhi_epi64(t[4 * i], t[4 * i + 2]);
        u[4 * i + 2] = _mm256_unpacklo_epi64(t[4 * i + 1], t[4 * i + 3]);
        u[4 * i + 3] = _mm256_unpackhi_epi64(t[4 * i + 1], t[4 * i + 3]);
    }
    for (int i = 0; i < 4; i++) {
        out[i] = _mm256_permute2x128_si256(u[i], u[i + 4], 0x20);
        out[i + 4] = _mm256_permute2x128_si256(u[i], u[i + 4], 0x31);
    }
}

/* Up to sixteen messages, hashed in step; digests[lane] gets each one's 16 bytes. */
__attribute__((target("avx2"))) static void hash_lanes(const uint8_t *data[LANES], const Py_ssize_t size[LANES],
                                                      int used, uint8_t digests[LANES][16]) {
    uint8_t tail[LANES][128];
    Py_ssize_t full[LANES], blocks[LANES], most = 0;
    int32_t counts[LANES];
    int halves = used > LANES / 2 ? 2 : 1;
    memset(tail, 0, sizeof tail);
    for (int lane = 0; lane < LANES; lane++) {
        Py_ssize_t n = lane < used ? size[lane] : 0, rest = n % 64;
        full[lane] = n / 64;
        blocks[lane] = lane < used ? full[lane] + (rest < 56 ? 1 : 2) : 0;
        counts[lane] = (int32_t)blocks[lane];  /* hexdigests refuses a body of 2^31 blocks */
        most = blocks[lane] > most ? blocks[lane] : most;
        if (lane >= used) continue;  /* an empty lane: hashes zeros, and its state is never kept */
        if (rest) memcpy(tail[lane], data[lane] + 64 * full[lane], (size_t)rest);
        tail[lane][rest] = 0x80;
        uint64_t bits = (uint64_t)n * 8;
        uint8_t *length = tail[lane] + (blocks[lane] - full[lane]) * 64 - 8;
        for (int i = 0; i < 8; i++) length[i] = (uint8_t)(bits >> (8 * i));
    }
    v8 state[2][4];
    for (int h = 0; h < 2; h++) {
        state[h][0] = _mm256_set1_epi32(0x67452301);
        state[h][1] = _mm256_set1_epi32((int)0xefcdab89);
        state[h][2] = _mm256_set1_epi32((int)0x98badcfe);
        state[h][3] = _mm256_set1_epi32(0x10325476);
    }
    for (Py_ssize_t block = 0; block < most; block++) {
        v8 m[2][16], before[2][4];
        for (int h = 0; h < halves; h++) {
            v8 low[8], high[8];
            for (int row = 0; row < 8; row++) {
                int lane = 8 * h + row;
                const uint8_t *p = block < full[lane] ? data[lane] + 64 * block
                                 : block < blocks[lane] ? tail[lane] + 64 * (block - full[lane]) : tail[lane];
                low[row] = _mm256_loadu_si256((const v8 *)p);  /* little-endian words, as MD5 reads them */
                high[row] = _mm256_loadu_si256((const v8 *)(p + 32));
            }
            transpose(low, m[h]);
            transpose(high, m[h] + 8);
            for (int i = 0; i < 4; i++) before[h][i] = state[h][i];
        }
        if (halves == 2) compress_two(state, m);
        else compress_one(state, m);
        for (int h = 0; h < halves; h++) {
            const v8 live = _mm256_cmpgt_epi32(_mm256_loadu_si256((const v8 *)(counts + 8 * h)),
                                               _mm256_set1_epi32((int)block));
            for (int i = 0; i < 4; i++) state[h][i] = _mm256_blendv_epi8(before[h][i], state[h][i], live);
        }
    }
    uint32_t out[2][4][8];
    for (int h = 0; h < 2; h++)
        for (int i = 0; i < 4; i++) _mm256_storeu_si256((v8 *)out[h][i], state[h][i]);
    for (int lane = 0; lane < used; lane++)
        for (int i = 0; i < 4; i++) memcpy(digests[lane] + 4 * i, &out[lane / 8][i][lane % 8], 4);
}

static PyObject *hex_of(const uint8_t digest[16]) {
    static const char hex[] = "0123456789abcdef";
    PyObject *text = PyUnicode_New(32, 127);
    if (text == NULL) return NULL;
    Py_UCS1 *chars = PyUnicode_1BYTE_DATA(text);
    for (int i = 0; i < 16; i++) {
        chars[2 * i] = (Py_UCS1)hex[digest[i] >> 4];
        chars[2 * i + 1] = (Py_UCS1)hex[digest[i] & 15];
    }
    return text;
}
#else
#define HAVE_LANES 0
#define LANES 0
#endif

static PyObject *hexdigests(PyObject *module, PyObject *bodies) {
    (void)module;
#if HAVE_LANES
    if (!__builtin_cpu_supports("avx2")) {
        PyErr_SetString(PyExc_RuntimeError, "this CPU has no AVX2: hash one by one");
        return NULL;
    }
    PyObject *items = PySequence_Fast(bodies, "hexdigests takes a sequence of bytes");
    if (items == NULL) return NULL;
    Py_ssize_t count = PySequence_Fast_GET_SIZE(items), total = 0, longest = 0;
    for (Py_ssize_t i = 0; i < count; i++) {
        PyObject *body = PySequence_Fast_GET_ITEM(items, i);
        if (!PyBytes_Check(body) || PyBytes_GET_SIZE(body) > ((Py_ssize_t)INT32_MAX - 2) * 64) {
            PyErr_SetString(PyBytes_Check(body) ? PyExc_OverflowError : PyExc_TypeError,
                            "hexdigests takes a sequence of bytes, each under 128 GiB");  /* blocks fit a lane */
            Py_DECREF(items);
            return NULL;
        }
        Py_ssize_t blocks = PyBytes_GET_SIZE(body) / 64 + 1;
        total += blocks;
        longest = blocks > longest ? blocks : longest;
    }
    /* The lanes run as long as the longest body, a pass of them costing about 2.3 one-body
     * digests: where one body is most of the bytes (or there is one), None says hash one by one. */
    if (2 * total <= 5 * longest * ((count + LANES - 1) / LANES)) {
        Py_DECREF(items);
        Py_RETURN_NONE;
    }
    PyObject *result = PyList_New(count);
    for (Py_ssize_t start = 0; result != NULL && start < count; start += LANES) {
        const uint8_t *data[LANES];
        Py_ssize_t size[LANES];
        uint8_t digests[LANES][16];
        int used = count - start < LANES ? (int)(count - start) : LANES;
        for (int lane = 0; lane < used; lane++) {
            PyObject *body = PySequence_Fast_GET_ITEM(items, start + lane);
            data[lane] = (const uint8_t *)PyBytes_AS_STRING(body);
            size[lane] = PyBytes_GET_SIZE(body);
        }
        hash_lanes(data, size, used, digests);
        for (int lane = 0; lane < used; lane++) {
            PyObject *text = hex_of(digests[lane]);
            if (text == NULL) {
                Py_CLEAR(result);
                break;
            }
            PyList_SET_ITEM(result, start + lane, text);
        }
    }
    Py_DECREF(items);
    return result;
#else
    (void)bodies;
    PyErr_SetString(PyExc_RuntimeError, "built without lanes: hash one by one");
    return NULL;
#endif
}

static PyMethodDef methods[] = {
    {"hexdigests", (PyCFunction)hexdigests, METH_O, "The MD5 hex digests of a sequence of bytes."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {PyModuleDef_HEAD_INIT, "_md5many", NULL, 0, methods, NULL, NULL, NULL, NULL};

PyMODINIT_FUNC PyInit__md5many(void) {
    PyObject *m = PyModule_Create(&module);
    if (m == NULL) return NULL;
#if HAVE_LANES
    for (int i = 0; i < 64; i++) memcpy(&KV[i], (uint32_t[8]){K[i], K[i], K[i], K[i], K[i], K[i], K[i], K[i]}, 32);
#endif
#if HAVE_LANES
    int lanes = __builtin_cpu_supports("avx2") ? LANES : 0;
#else
    int lanes = 0;
#endif
    if (PyModule_AddIntConstant(m, "LANES", lanes) < 0) {
        Py_DECREF(m);
        return NULL;
    }
    return m;
}
