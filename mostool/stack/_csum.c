/* mostool.stack._csum: the RFC 1071 ones'-complement sum in C (the pure fallback and the
 * contract are in csum.py). Sums 32-bit native-order words into a 64-bit accumulator and folds:
 * 2**32 == 1 (mod 0xFFFF), and a sum taken in the wrong byte order is the byte-swapped sum
 * (RFC 1071 section 2(B)), so one swap at the end gives the big-endian result.
 * ipv4_tcp_sum_ok(data, frame): a frame's TCP checksum verified where it lies (record blocks).
 * Also refcount(obj): the engine's C helper for stack/emit.py's spare event values, which may
 * be handed out again only while nobody else holds them (sys.getrefcount, without the engine
 * importing sys). */
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

/* native_sum's accumulator as the big-endian ones'-complement sum, plus initial, folded */
static unsigned
finish(uint64_t acc, uint64_t initial)
{
    unsigned r = fold(acc);
#if !PY_BIG_ENDIAN
    r = ((r & 0xffu) << 8) | (r >> 8);
#endif
    return fold((uint64_t)r + initial);
}

/* the bytes of obj: a bytes object's own, or any buffer's through view (view->obj is NULL
 * for bytes; PyBuffer_Release(view) is then a no-op); -1 with the error set */
static int
bytes_of(PyObject *obj, Py_buffer *view, const unsigned char **base, Py_ssize_t *size)
{
    view->obj = NULL;
    if (PyBytes_CheckExact(obj)) {
        *base = (const unsigned char *)PyBytes_AS_STRING(obj);
        *size = PyBytes_GET_SIZE(obj);
        return 0;
    }
    if (PyObject_GetBuffer(obj, view, PyBUF_SIMPLE) < 0)
        return -1;
    *base = (const unsigned char *)view->buf;
    *size = view->len;
    return 0;
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

    if (bytes_of(data, &view, &base, &size) < 0)
        return NULL;
    if (length == -1)
        length = size - start;
    if (start < 0 || length < 0 || start + length > size) {
        PyBuffer_Release(&view);
        PyErr_SetString(PyExc_IndexError, "ones_sum_at: range outside data");
        return NULL;
    }
    acc = native_sum(base + start, length);
    PyBuffer_Release(&view);
    return PyLong_FromUnsignedLong(finish(acc, initial));
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

/* ipv4_tcp_sum_ok(data, frame): does the TCP checksum of the IPv4 packet (no options) of the
 * Ethernet frame at data[frame:] verify? The addresses and the segment are summed in one
 * piece, with the protocol and segment length of the pseudo-header as the initial value:
 * ones_sum_at(data, frame + 26, tlen - 12, tlen - 14) == 0xFFFF, tlen the IPv4 total length
 * (>= 20), without boxing the lengths and the sum (the compiled record loop, per packet).
 * IndexError when the packet is outside data, as ones_sum_at. */
static PyObject *
ipv4_tcp_sum_ok(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    Py_buffer view;
    const unsigned char *base;
    Py_ssize_t size, frame, tlen;
    uint64_t acc;

    if (nargs != 2) {
        PyErr_SetString(PyExc_TypeError, "ipv4_tcp_sum_ok(data, frame) takes 2 arguments");
        return NULL;
    }
    frame = PyLong_AsSsize_t(args[1]);
    if (frame == -1 && PyErr_Occurred())
        return NULL;
    if (bytes_of(args[0], &view, &base, &size) < 0)
        return NULL;
    if (frame < 0 || frame + 18 > size
            || (tlen = ((Py_ssize_t)base[frame + 16] << 8) | base[frame + 17]) < 20
            || frame + 14 + tlen > size) {
        PyBuffer_Release(&view);
        PyErr_SetString(PyExc_IndexError, "ipv4_tcp_sum_ok: packet outside data");
        return NULL;
    }
    acc = native_sum(base + frame + 26, tlen - 12);
    PyBuffer_Release(&view);
    if (finish(acc, (uint64_t)(tlen - 14)) == 0xffffu)
        Py_RETURN_TRUE;
    Py_RETURN_FALSE;
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
    {"ipv4_tcp_sum_ok", (PyCFunction)(void (*)(void))ipv4_tcp_sum_ok, METH_FASTCALL,
     "ipv4_tcp_sum_ok(data, frame) -> bool: does the TCP checksum of the IPv4 packet (no "
     "options) of the Ethernet frame at data[frame:] verify?"},
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
