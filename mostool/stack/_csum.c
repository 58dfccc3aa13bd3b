/* mostool.stack._csum: the RFC 1071 ones'-complement sum in C (the pure fallback and the
 * contract are in csum.py). Sums 32-bit native-order words into a 64-bit accumulator and folds:
 * 2**32 == 1 (mod 0xFFFF), and a sum taken in the wrong byte order is the byte-swapped sum
 * (RFC 1071 section 2(B)), so one swap at the end gives the big-endian result.
 * Also refcount(obj): the engine's C helper for stack/emit.py's spare event values, which may
 * be handed out again only while nobody else holds them (sys.getrefcount, without the engine
 * importing sys).
 * And share_block(...): a block of a capture's records as one worker of a --workers run reads
 * it (stack/shares.py has the contract and the pure fallback). */
#define PY_SSIZE_T_CLEAN
#include <Python.h>
#include <stdint.h>
#include <string.h>

static uint64_t
native_sum(const unsigned char *p, Py_ssize_t n)
{
    uint64_t acc = 0;
    /* each step adds < 2**33; 2**30 steps stay below 2**63 */
    while (n >= 8) {
        uint64_t w;
        memcpy(&w, p, 8);
        acc += (w & 0xffffffffu) + (w >> 32);
        p += 8;
        n -= 8;
    }
    while (n >= 2) {
        uint16_t w;
        memcpy(&w, p, 2);
        acc += w;
        p += 2;
        n -= 2;
    }
    if (n) {
        /* the odd byte is the high byte of a big-endian word padded with zero */
#if PY_BIG_ENDIAN
        acc += (uint64_t)p[0] << 8;
#else
        acc += p[0];
#endif
    }
    return acc;
}

static unsigned
fold(uint64_t acc)
{
    while (acc >> 16)
        acc = (acc & 0xffffu) + (acc >> 16);
    return (unsigned)acc;
}

/* initial, checked: 0 on success, -1 with the error set */
static int
parse_initial(PyObject *obj, unsigned long *initial)
{
    *initial = PyLong_AsUnsignedLong(obj);
    if (*initial == (unsigned long)-1 && PyErr_Occurred())
        return -1;
    if (*initial > 0xffffu) {
        PyErr_SetString(PyExc_ValueError, "initial must be in 0..0xFFFF");
        return -1;
    }
    return 0;
}

/* the ones'-complement sum of data[start:start + length] (length -1: to the end) plus
 * initial, as a Python int; NULL with IndexError when the range is outside data */
static PyObject *
sum_range(PyObject *data, Py_ssize_t start, Py_ssize_t length, unsigned long initial)
{
    Py_buffer view;
    const unsigned char *base;
    Py_ssize_t size;
    uint64_t acc;
    unsigned r;
    int viewed = !PyBytes_CheckExact(data);

    if (viewed) {
        if (PyObject_GetBuffer(data, &view, PyBUF_SIMPLE) < 0)
            return NULL;
        base = (const unsigned char *)view.buf;
        size = view.len;
    } else {
        base = (const unsigned char *)PyBytes_AS_STRING(data);
        size = PyBytes_GET_SIZE(data);
    }
    if (length == -1)
        length = size - start;
    if (start < 0 || length < 0 || start + length > size) {
        if (viewed)
            PyBuffer_Release(&view);
        PyErr_SetString(PyExc_IndexError, "ones_sum_at: range outside data");
        return NULL;
    }
    acc = native_sum(base + start, length);
    if (viewed)
        PyBuffer_Release(&view);
    r = fold(acc);
#if !PY_BIG_ENDIAN
    r = ((r & 0xffu) << 8) | (r >> 8);
#endif
    r = fold((uint64_t)r + initial);
    return PyLong_FromUnsignedLong(r);
}

static PyObject *
ones_sum(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    unsigned long initial = 0;

    if (nargs < 1 || nargs > 2) {
        PyErr_SetString(PyExc_TypeError, "ones_sum(data, initial=0) takes 1 or 2 arguments");
        return NULL;
    }
    if (nargs == 2 && parse_initial(args[1], &initial) < 0)
        return NULL;
    return sum_range(args[0], 0, -1, initial);
}

/* ones_sum_at(data, start, length, initial): ones_sum(data[start:start + length], initial)
 * without the slice (a segment read where it lies, in a record block or a frame) */
static PyObject *
ones_sum_at(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    Py_ssize_t start, length;
    unsigned long initial;

    if (nargs != 4) {
        PyErr_SetString(PyExc_TypeError,
                        "ones_sum_at(data, start, length, initial) takes 4 arguments");
        return NULL;
    }
    start = PyLong_AsSsize_t(args[1]);
    if (start == -1 && PyErr_Occurred())
        return NULL;
    length = PyLong_AsSsize_t(args[2]);
    if (length == -1 && PyErr_Occurred())
        return NULL;
    if (parse_initial(args[3], &initial) < 0)
        return NULL;
    if (length < 0) {           /* -1 means "to the end" only inside sum_range */
        PyErr_SetString(PyExc_IndexError, "ones_sum_at: range outside data");
        return NULL;
    }
    return sum_range(args[0], start, length, initial);
}

static uint32_t
rd32(const unsigned char *p, int little)
{
    if (little)
        return (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16)
               | ((uint32_t)p[3] << 24);
    return ((uint32_t)p[0] << 24) | ((uint32_t)p[1] << 16) | ((uint32_t)p[2] << 8)
           | (uint32_t)p[3];
}

/* share_block(buf, start, stop, little, max_caplen, index, count) -> bytes: buf[start:stop]
 * (classic pcap records from start), except that past the first KEPT bytes of the frame, a
 * plain IPv4/TCP record of another share is zeros (see stack/shares.py). */
#define SHARE_KEPT 54
/* the block is read ahead of the record walk: a header read from memory not yet cached costs
 * its whole latency (the walk cannot ask for the next header before it has this one), while
 * prefetched lines arrive in parallel */
#define SHARE_AHEAD 4096
static PyObject *
share_block(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    Py_buffer view;
    Py_ssize_t start, stop, r, copied, ahead;
    long long max_caplen;
    long index, count;
    int little;
    const unsigned char *src;
    unsigned char *dst;
    PyObject *out;

    if (nargs != 7) {
        PyErr_SetString(PyExc_TypeError, "share_block(buf, start, stop, little, max_caplen, "
                        "index, count) takes 7 arguments");
        return NULL;
    }
    start = PyLong_AsSsize_t(args[1]);
    if (start == -1 && PyErr_Occurred())
        return NULL;
    stop = PyLong_AsSsize_t(args[2]);
    if (stop == -1 && PyErr_Occurred())
        return NULL;
    little = PyObject_IsTrue(args[3]);
    if (little < 0)
        return NULL;
    max_caplen = PyLong_AsLongLong(args[4]);
    if (max_caplen == -1 && PyErr_Occurred())
        return NULL;
    index = PyLong_AsLong(args[5]);
    if (index == -1 && PyErr_Occurred())
        return NULL;
    count = PyLong_AsLong(args[6]);
    if (count == -1 && PyErr_Occurred())
        return NULL;
    if (count < 1 || index < 0 || index >= count) {
        PyErr_SetString(PyExc_ValueError, "share_block: want 0 <= index < count");
        return NULL;
    }
    if (PyObject_GetBuffer(args[0], &view, PyBUF_SIMPLE) < 0)
        return NULL;
    if (start < 0 || stop < start || stop > view.len) {
        PyBuffer_Release(&view);
        PyErr_SetString(PyExc_IndexError, "share_block: range outside buf");
        return NULL;
    }
    out = PyBytes_FromStringAndSize(NULL, stop - start);
    if (out == NULL) {
        PyBuffer_Release(&view);
        return NULL;
    }
    src = (const unsigned char *)view.buf + start;
    dst = (unsigned char *)PyBytes_AS_STRING(out);
    stop -= start;
    r = copied = 0;             /* src[copied:r] is still to copy */
    ahead = 0;
    while (r + 16 <= stop) {
#if defined(__GNUC__) || defined(__clang__)
        for (; ahead < r + SHARE_AHEAD && ahead < stop; ahead += 64)
            __builtin_prefetch(src + ahead);
#endif
        uint32_t incl = rd32(src + r + 8, little);
        Py_ssize_t nxt = r + 16 + (Py_ssize_t)incl;
        const unsigned char *f = src + r + 16;
        if ((long long)incl > max_caplen || nxt > stop)
            break;              /* damage, or a record past the block: copied as it is */
        if (incl >= SHARE_KEPT && f[12] == 0x08 && f[13] == 0 && f[14] == 0x45
                && (f[20] & 0x3F) == 0 && f[21] == 0 && f[23] == 6) {
            uint32_t tlen = ((uint32_t)f[16] << 8) | f[17];
            uint32_t thl = (f[46] >> 2) & 0x3C;
            if (thl >= 20 && tlen >= 20 + thl && 34 + thl <= incl) {
                uint32_t addrs = rd32(f + 26, 0) ^ rd32(f + 30, 0);
                uint32_t ports = (((uint32_t)f[34] << 8) | f[35]) ^ (((uint32_t)f[36] << 8) | f[37]);
                uint32_t h = (uint32_t)(addrs * 0x9E3779B1u + ports) * 0x85EBCA6Bu;
                if ((long)((h >> 15) % (uint32_t)count) != index) {
                    Py_ssize_t cut = r + 16 + SHARE_KEPT;
                    memcpy(dst + copied, src + copied, (size_t)(cut - copied));
                    memset(dst + cut, 0, (size_t)(nxt - cut));
                    copied = nxt;
                }
            }
        }
        r = nxt;
    }
    memcpy(dst + copied, src + copied, (size_t)(stop - copied));
    PyBuffer_Release(&view);
    return out;
}

static PyObject *
refcount(PyObject *self, PyObject *obj)
{
    return PyLong_FromSsize_t(Py_REFCNT(obj));
}

static PyMethodDef methods[] = {
    {"ones_sum", (PyCFunction)(void (*)(void))ones_sum, METH_FASTCALL,
     "ones_sum(data, initial=0) -> int: RFC 1071 ones'-complement sum of data (big-endian "
     "16-bit words, an odd last byte padded with zero) added to initial; 0 only when both "
     "are all zero, 0xFFFF for other multiples of 0xFFFF."},
    {"ones_sum_at", (PyCFunction)(void (*)(void))ones_sum_at, METH_FASTCALL,
     "ones_sum_at(data, start, length, initial) -> int: ones_sum(data[start:start + length], "
     "initial) without the slice; IndexError when the range is outside data."},
    {"share_block", (PyCFunction)(void (*)(void))share_block, METH_FASTCALL,
     "share_block(buf, start, stop, little, max_caplen, index, count) -> bytes: "
     "buf[start:stop] with the payload of other shares' plain IPv4/TCP records zeroed "
     "(mostool.stack.shares)."},
    {"refcount", (PyCFunction)refcount, METH_O,
     "refcount(obj) -> int: the reference count of obj (as sys.getrefcount)."},
    {NULL, NULL, 0, NULL},
};

static struct PyModuleDef moduledef = {
    PyModuleDef_HEAD_INIT, "mostool.stack._csum", NULL, 0, methods,
};

PyMODINIT_FUNC
PyInit__csum(void)
{
    return PyModule_Create(&moduledef);
}
