/* HMAC-SHA-256 of many short messages under one key, for the trial's tokeniser.
 *
 * HMAC(k, m) = SHA-256(opad || SHA-256(ipad || prefix || m)). The SHA-256 states after the
 * 64-byte ipad block (plus the shared message prefix) and after the opad block are computed
 * once per call; each value then costs a copy of each state and, for a message that fits
 * the remaining block, one compression each: two in all, against four for HMAC from scratch.
 * OpenSSL's SHA-256 uses the CPU's SHA extensions where present. The GIL is released while
 * hashing, so slices of one column can be hashed on every core.
 *
 * Values come as an Arrow large-string column: an int64 offsets buffer (n + 1 entries) and
 * the UTF-8 data buffer. The result is n fixed-width lower-case hex strings, concatenated.
 * Nothing here reads or writes a file, and no value is ever put into an exception.
 */
#define PY_SSIZE_T_CLEAN
#define OPENSSL_SUPPRESS_DEPRECATED
#include <Python.h>
#include <openssl/crypto.h>
#include <openssl/sha.h>
#include <stdint.h>
#include <string.h>

#define BLOCK 64

static const char HEX[] = "0123456789abcdef";

static void keyed_states(const unsigned char *key, Py_ssize_t key_len,
                         const unsigned char *prefix, Py_ssize_t prefix_len,
                         SHA256_CTX *inner, SHA256_CTX *outer)
{
    unsigned char block[BLOCK];
    unsigned char pad[BLOCK];
    memset(block, 0, BLOCK);
    if (key_len > BLOCK) {
        SHA256(key, (size_t)key_len, block);
    } else {
        memcpy(block, key, (size_t)key_len);
    }
    for (int i = 0; i < BLOCK; i++) pad[i] = block[i] ^ 0x36;
    SHA256_Init(inner);
    SHA256_Update(inner, pad, BLOCK);
    SHA256_Update(inner, prefix, (size_t)prefix_len);
    for (int i = 0; i < BLOCK; i++) pad[i] = block[i] ^ 0x5c;
    SHA256_Init(outer);
    SHA256_Update(outer, pad, BLOCK);
    OPENSSL_cleanse(block, BLOCK);
    OPENSSL_cleanse(pad, BLOCK);
}

static void hash_all(const SHA256_CTX *inner, const SHA256_CTX *outer,
                     const int64_t *offsets, const unsigned char *data, Py_ssize_t count,
                     Py_ssize_t hex_chars, char *out)
{
    unsigned char digest[SHA256_DIGEST_LENGTH];
    SHA256_CTX ctx;
    for (Py_ssize_t i = 0; i < count; i++) {
        ctx = *inner;
        SHA256_Update(&ctx, data + offsets[i], (size_t)(offsets[i + 1] - offsets[i]));
        SHA256_Final(digest, &ctx);
        ctx = *outer;
        SHA256_Update(&ctx, digest, SHA256_DIGEST_LENGTH);
        SHA256_Final(digest, &ctx);
        for (Py_ssize_t j = 0; j < hex_chars; j++) {
            unsigned char byte = digest[j / 2];
            *out++ = HEX[(j % 2) ? (byte & 0x0f) : (byte >> 4)];
        }
    }
    OPENSSL_cleanse(&ctx, sizeof ctx);
    OPENSSL_cleanse(digest, sizeof digest);
}

/* Offsets must start at or after 0, never decrease, and stay within the data buffer. */
static int offsets_valid(const int64_t *offsets, Py_ssize_t count, Py_ssize_t data_len)
{
    if (offsets[0] < 0) return 0;
    for (Py_ssize_t i = 0; i < count; i++) {
        if (offsets[i + 1] < offsets[i]) return 0;
    }
    return offsets[count] <= data_len;
}

static PyObject *hmac_sha256_hex(PyObject *self, PyObject *args)
{
    (void)self;
    Py_buffer key, prefix, offsets, data;
    Py_ssize_t hex_chars;
    if (!PyArg_ParseTuple(args, "y*y*y*y*n", &key, &prefix, &offsets, &data, &hex_chars)) {
        return NULL;
    }
    PyObject *result = NULL;
    Py_ssize_t count = offsets.len / (Py_ssize_t)sizeof(int64_t) - 1;
    if (hex_chars < 1 || hex_chars > 2 * SHA256_DIGEST_LENGTH) {
        PyErr_SetString(PyExc_ValueError, "hex_chars must be between 1 and 64");
    } else if (offsets.len % (Py_ssize_t)sizeof(int64_t) != 0 || count < 0) {
        PyErr_SetString(PyExc_ValueError, "offsets must hold n + 1 int64 values");
    } else if (!offsets_valid((const int64_t *)offsets.buf, count, data.len)) {
        PyErr_SetString(PyExc_ValueError, "offsets do not fit the data buffer");
    } else if (count > PY_SSIZE_T_MAX / hex_chars) {
        PyErr_SetString(PyExc_OverflowError, "too many values");
    } else {
        result = PyBytes_FromStringAndSize(NULL, count * hex_chars);
    }
    if (result != NULL) {
        SHA256_CTX inner, outer;
        char *out = PyBytes_AS_STRING(result);
        Py_BEGIN_ALLOW_THREADS
        keyed_states(key.buf, key.len, prefix.buf, prefix.len, &inner, &outer);
        hash_all(&inner, &outer, offsets.buf, data.buf, count, hex_chars, out);
        OPENSSL_cleanse(&inner, sizeof inner);
        OPENSSL_cleanse(&outer, sizeof outer);
        Py_END_ALLOW_THREADS
    }
    PyBuffer_Release(&key);
    PyBuffer_Release(&prefix);
    PyBuffer_Release(&offsets);
    PyBuffer_Release(&data);
    return result;
}

static PyMethodDef methods[] = {
    {"hmac_sha256_hex", hmac_sha256_hex, METH_VARARGS,
     "hmac_sha256_hex(key, prefix, offsets, data, hex_chars) -> bytes"},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef module = {
    PyModuleDef_HEAD_INIT, "hmacbatch._native", NULL, -1, methods, NULL, NULL, NULL, NULL,
};

PyMODINIT_FUNC PyInit__native(void) { return PyModule_Create(&module); }
