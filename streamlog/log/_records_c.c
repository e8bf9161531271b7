/*
 * The per-record loops of the RecordBatch v2 codec, in C.
 *
 * A drop-in for streamlog/log/_records_py.py: the same four functions and BatchBuilder
 * type, arguments, results and exceptions (the tests compare the two on fuzzed input).
 * Batch framing (header, CRC, compression) stays in records.py; this file only turns a
 * records section into record objects and back, which is where the time goes.
 *
 * Safety rules this file keeps:
 *   - every read of input is bounded by the end of the current record (or, for the
 *     record length, of the section) before it happens;
 *   - input buffers are held through the buffer protocol for the whole call, so a
 *     bytearray cannot be resized and a memoryview cannot be released under us;
 *   - sequences given to the encoders are turned into tuples first (a no-op for
 *     tuples), so Python code that runs during the call (a __buffer__ method, a
 *     finaliser run by the GC) cannot change the length of what we iterate; the one
 *     exception, BatchBuilder.add_many, re-reads lengths and holds items instead;
 *   - every reference taken is released on every path; nothing borrowed is released.
 *
 * Decoded records are untracked by the cycle collector when nothing in them can be part
 * of a cycle (see record_untrackable): what CPython's own collector does to such tuples
 * on its first pass over them, done at birth. A fetch decodes thousands of records at a
 * time; left tracked, every one of them is traversed by the young-generation passes
 * their own allocation triggers, which took half of the decode time.
 */
#define PY_SSIZE_T_CLEAN
#include <Python.h>

#include <limits.h>
#include <stdint.h>
#include <string.h>
#include <time.h>
#ifdef _WIN32
#include <windows.h>
#endif

#define MIN_RECORD_SIZE 7 /* length, attributes, ts delta, offset delta, key, value, header count */

typedef struct {
    PyObject *corrupt_error;  /* streamlog.log.errors.CorruptRecordError */
    PyObject *invalid_error;  /* streamlog.log.errors.InvalidRecordError */
    PyObject *record_type;    /* streamlog.log._records_py.Record, a tuple subclass */
} module_state;

static inline module_state *
get_state(PyObject *module)
{
    return (module_state *)PyModule_GetState(module);
}

/* ------------------------------------------------------------------ varint reading */

/* Return 0 and advance *pp on success, -1 if the input ends first, -2 if the varint is
 * longer than 5 bytes or wider than 32 bits. */
static inline int
read_varint(const uint8_t **pp, const uint8_t *end, int32_t *out)
{
    const uint8_t *p = *pp;
    uint32_t u = 0;
    int shift;
    for (shift = 0; shift <= 28; shift += 7) {
        uint8_t b;
        if (p >= end) {
            return -1;
        }
        b = *p++;
        if (shift == 28 && b > 0x0F) {
            return -2;
        }
        u |= (uint32_t)(b & 0x7F) << shift;
        if (b < 0x80) {
            *pp = p;
            *out = (int32_t)(u >> 1) ^ -(int32_t)(u & 1);
            return 0;
        }
    }
    return -2; /* not reached: the 5th byte either ends the varint or fails above */
}

/* As read_varint, for varlongs: at most 10 bytes, 64 bits. */
static inline int
read_varlong(const uint8_t **pp, const uint8_t *end, int64_t *out)
{
    const uint8_t *p = *pp;
    uint64_t u = 0;
    int shift;
    for (shift = 0; shift <= 63; shift += 7) {
        uint8_t b;
        if (p >= end) {
            return -1;
        }
        b = *p++;
        if (shift == 63 && b > 0x01) {
            return -2;
        }
        u |= (uint64_t)(b & 0x7F) << shift;
        if (b < 0x80) {
            *pp = p;
            *out = (int64_t)(u >> 1) ^ -(int64_t)(u & 1);
            return 0;
        }
    }
    return -2;
}

/* ------------------------------------------------------------------------- decoding */

/* Raise CorruptRecordError for record `index`; always returns NULL. */
static PyObject *
corrupt(module_state *st, Py_ssize_t index, const char *what)
{
    PyErr_Format(st->corrupt_error, "record %zd: %s", index, what);
    return NULL;
}

static const char *
varint_problem(int rc)
{
    return rc == -1 ? "truncated varint" : "varint too long or too wide";
}

/* A nullable byte string: length -1 is None; anything else negative, or past `end`, is
 * corrupt. Returns a new reference, or NULL with `*problem` set (or an exception set if
 * allocation failed and *problem is NULL). */
static PyObject *
read_nullable_bytes(const uint8_t **pp, const uint8_t *end, const char **problem)
{
    int32_t n;
    int rc = read_varint(pp, end, &n);
    PyObject *result;
    if (rc != 0) {
        *problem = varint_problem(rc);
        return NULL;
    }
    if (n == -1) {
        Py_RETURN_NONE;
    }
    if (n < 0) {
        *problem = "negative length";
        return NULL;
    }
    if (n > end - *pp) {
        *problem = "key, value or header overruns its record";
        return NULL;
    }
    result = PyBytes_FromStringAndSize((const char *)*pp, n);
    if (result != NULL) {
        *pp += n;
    }
    return result;
}

/* The checks of read_nullable_bytes without making the object: for records that are
 * validated but not returned. 0 on success, -1 with `*problem` set. */
static int
skip_nullable_bytes(const uint8_t **pp, const uint8_t *end, const char **problem)
{
    int32_t n;
    int rc = read_varint(pp, end, &n);
    if (rc != 0) {
        *problem = varint_problem(rc);
        return -1;
    }
    if (n == -1) {
        return 0;
    }
    if (n < 0) {
        *problem = "negative length";
        return -1;
    }
    if (n > end - *pp) {
        *problem = "key, value or header overruns its record";
        return -1;
    }
    *pp += n;
    return 0;
}

static PyObject *
read_headers(module_state *st, Py_ssize_t index, const uint8_t **pp, const uint8_t *end)
{
    int32_t count, i;
    const char *problem = NULL;
    PyObject *headers;
    int rc = read_varint(pp, end, &count);
    if (rc != 0) {
        return corrupt(st, index, varint_problem(rc));
    }
    if (count == 0) {
        return PyTuple_New(0);
    }
    /* Each header takes at least two bytes (key length and value length). */
    if (count < 0 || count > (end - *pp) / 2) {
        return corrupt(st, index, "header count is negative or larger than the record");
    }
    headers = PyTuple_New(count);
    if (headers == NULL) {
        return NULL;
    }
    for (i = 0; i < count; i++) {
        int32_t n;
        PyObject *name, *value, *pair;
        rc = read_varint(pp, end, &n);
        if (rc != 0) {
            Py_DECREF(headers);
            return corrupt(st, index, varint_problem(rc));
        }
        if (n < 0 || n > end - *pp) {
            Py_DECREF(headers);
            return corrupt(st, index, "header key length is negative or overruns its record");
        }
        name = PyUnicode_DecodeUTF8((const char *)*pp, n, "strict");
        if (name == NULL) {
            if (PyErr_ExceptionMatches(PyExc_UnicodeDecodeError)) {
                PyErr_Clear();
                Py_DECREF(headers);
                return corrupt(st, index, "header key is not UTF-8");
            }
            Py_DECREF(headers);
            return NULL;
        }
        *pp += n;
        value = read_nullable_bytes(pp, end, &problem);
        if (value == NULL) {
            Py_DECREF(name);
            Py_DECREF(headers);
            return problem ? corrupt(st, index, problem) : NULL;
        }
        pair = PyTuple_New(2);
        if (pair == NULL) {
            Py_DECREF(name);
            Py_DECREF(value);
            Py_DECREF(headers);
            return NULL;
        }
        PyTuple_SET_ITEM(pair, 0, name);
        PyTuple_SET_ITEM(pair, 1, value);
        PyObject_GC_UnTrack(pair); /* a str and bytes or None: cannot be in a cycle */
        PyTuple_SET_ITEM(headers, i, pair);
    }
    PyObject_GC_UnTrack(headers); /* only untracked pairs: cannot be in a cycle */
    return headers;
}

/* How decode_records builds each record: an instance of `type` (a tuple subclass, or
 * tuple) holding the `prefix` items then offset, timestamp, key, value, headers. */
typedef struct {
    PyTypeObject *type;
    PyObject *prefix;     /* a tuple, borrowed; NULL for none */
    Py_ssize_t prefix_len;
    int untrack;          /* see record_untrackable */
} record_maker;

/* Whether records made this way can never be part of a reference cycle, so that the
 * cycle collector need not track them: instances carry no __dict__, no weakref list and
 * no slots beyond the tuple's items, they run no finaliser, and every item is either
 * untracked by the collector (str, int, bytes, None, the header tuples read_headers
 * untracks) or, for the prefix, checked to be so here. */
static int
record_untrackable(PyTypeObject *type, PyObject *prefix)
{
    Py_ssize_t i;
    if (type != &PyTuple_Type
        && (type->tp_dictoffset != 0 || type->tp_weaklistoffset != 0
            || type->tp_basicsize != PyTuple_Type.tp_basicsize
            || type->tp_itemsize != PyTuple_Type.tp_itemsize || type->tp_del != NULL
            || (type->tp_finalize != NULL && type->tp_finalize != PyTuple_Type.tp_finalize))) {
        return 0;
    }
    for (i = 0; prefix != NULL && i < PyTuple_GET_SIZE(prefix); i++) {
        PyObject *item = PyTuple_GET_ITEM(prefix, i);
        if (PyObject_IS_GC(item) && PyObject_GC_IsTracked(item)) {
            return 0;
        }
    }
    return 1;
}

/* A record holding the prefix items (new references) and the five given references,
 * which it steals, even on failure. Allocated with the type's tp_alloc and filled in
 * place: what tuple.__new__(type, prefix + items) produces, without the temporary
 * tuples and the copies. */
static PyObject *
make_record(const record_maker *mk, PyObject *offset, PyObject *timestamp, PyObject *key,
            PyObject *value, PyObject *headers)
{
    PyTypeObject *type = mk->type;
    Py_ssize_t n = mk->prefix_len, i;
    PyObject *record = type == &PyTuple_Type ? PyTuple_New(n + 5) : type->tp_alloc(type, n + 5);
    if (record == NULL) {
        Py_DECREF(offset);
        Py_DECREF(timestamp);
        Py_DECREF(key);
        Py_DECREF(value);
        Py_DECREF(headers);
        return NULL;
    }
    for (i = 0; i < n; i++) {
        PyObject *item = PyTuple_GET_ITEM(mk->prefix, i);
        Py_INCREF(item);
        PyTuple_SET_ITEM(record, i, item);
    }
    PyTuple_SET_ITEM(record, n, offset);
    PyTuple_SET_ITEM(record, n + 1, timestamp);
    PyTuple_SET_ITEM(record, n + 2, key);
    PyTuple_SET_ITEM(record, n + 3, value);
    PyTuple_SET_ITEM(record, n + 4, headers);
    if (mk->untrack) {
        PyObject_GC_UnTrack(record);
    }
    return record;
}

PyDoc_STRVAR(decode_records_doc,
"decode_records(buf, start, end, count, base_offset, base_timestamp, append_time,\n"
"               prefix=(), record_type=Record, min_offset=-2**63)\n"
"--\n\n"
"Decode `count` records from buf[start:end], which they must fill exactly; return\n"
"those at or after `min_offset` as record_type(*prefix, offset, timestamp, key, value,\n"
"headers).");

/* Check the optional arguments of decode_records and fill `mk`; -1 with an exception. */
static int
get_record_maker(module_state *st, PyObject *const *args, Py_ssize_t nargs, record_maker *mk,
                 long long *min_offset)
{
    PyObject *prefix = nargs > 7 ? args[7] : NULL; /* NULL: no prefix */
    PyObject *type = nargs > 8 ? args[8] : st->record_type;
    if (prefix != NULL && !PyTuple_Check(prefix)) {
        PyErr_Format(PyExc_TypeError, "prefix must be a tuple, not %.100s",
                     Py_TYPE(prefix)->tp_name);
        return -1;
    }
    if (!PyType_Check(type) || !PyType_IsSubtype((PyTypeObject *)type, &PyTuple_Type)) {
        PyErr_SetString(PyExc_TypeError, "record_type must be tuple or a subclass of it");
        return -1;
    }
    *min_offset = LLONG_MIN;
    if (nargs > 9) {
        if (!PyLong_Check(args[9])) {
            PyErr_Format(PyExc_TypeError, "min_offset must be an int, not %.100s",
                         Py_TYPE(args[9])->tp_name);
            return -1;
        }
        int overflow;
        *min_offset = PyLong_AsLongLongAndOverflow(args[9], &overflow);
        if (overflow) {
            PyErr_SetString(PyExc_ValueError, "min_offset does not fit in int64");
            return -1;
        }
        if (*min_offset == -1 && PyErr_Occurred()) {
            return -1;
        }
    }
    mk->type = (PyTypeObject *)type;
    mk->prefix = prefix;
    mk->prefix_len = prefix == NULL ? 0 : PyTuple_GET_SIZE(prefix);
    mk->untrack = record_untrackable(mk->type, prefix);
    return 0;
}

static PyObject *
decode_records(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    module_state *st = get_state(module);
    Py_buffer view;
    Py_ssize_t start, end, count, i, kept = 0;
    long long base_offset, base_timestamp, append_time = 0, min_offset;
    int has_append_time;
    const uint8_t *p, *limit;
    PyObject *records = NULL, *last_timestamp = NULL;
    int64_t last_ts = 0;
    record_maker mk;

    if (nargs < 7 || nargs > 10) {
        PyErr_Format(PyExc_TypeError, "decode_records() takes 7 to 10 arguments (%zd given)",
                     nargs);
        return NULL;
    }
    start = PyLong_AsSsize_t(args[1]);
    end = PyLong_AsSsize_t(args[2]);
    count = PyLong_AsSsize_t(args[3]);
    base_offset = PyLong_AsLongLong(args[4]);
    base_timestamp = PyLong_AsLongLong(args[5]);
    has_append_time = args[6] != Py_None;
    if (has_append_time) {
        append_time = PyLong_AsLongLong(args[6]);
    }
    if (PyErr_Occurred()) {
        return NULL;
    }
    if (get_record_maker(st, args, nargs, &mk, &min_offset) < 0) {
        return NULL;
    }
    if (PyObject_GetBuffer(args[0], &view, PyBUF_SIMPLE) < 0) {
        return NULL;
    }
    if (start < 0 || end < start || end > view.len || count < 0) {
        PyErr_Format(PyExc_ValueError, "bad records span [%zd, %zd) or count %zd",
                     start, end, count);
        goto error;
    }
    p = (const uint8_t *)view.buf + start;
    limit = (const uint8_t *)view.buf + end;
    if (count > (end - start) / MIN_RECORD_SIZE) {
        PyErr_Format(st->corrupt_error, "%zd records cannot fit in %zd bytes",
                     count, end - start);
        goto error;
    }
    records = PyList_New(count);
    if (records == NULL) {
        goto error;
    }
    /* Records below min_offset are validated like the others but not made; `kept`
     * counts those made, and the list is cut to it at the end. */
    for (i = 0; i < count; i++) {
        int32_t length, offset_delta;
        int64_t ts_delta, offset, timestamp;
        const uint8_t *record_end;
        const char *problem = NULL;
        PyObject *key, *value, *headers, *py_offset, *py_timestamp, *record;
        int rc = read_varint(&p, limit, &length), skip;
        if (rc != 0) {
            corrupt(st, i, varint_problem(rc));
            goto error;
        }
        if (length < 0 || length > limit - p) {
            corrupt(st, i, "record length is negative or overruns the batch");
            goto error;
        }
        record_end = p + length;
        if (p >= record_end) {
            corrupt(st, i, "record is truncated");
            goto error;
        }
        p++; /* attributes: unused */
        if ((rc = read_varlong(&p, record_end, &ts_delta)) != 0
            || (rc = read_varint(&p, record_end, &offset_delta)) != 0) {
            corrupt(st, i, varint_problem(rc));
            goto error;
        }
        if (has_append_time) {
            timestamp = append_time;
        }
        else if (__builtin_add_overflow(base_timestamp, ts_delta, &timestamp)) {
            corrupt(st, i, "record offset or timestamp overflows int64");
            goto error;
        }
        if (__builtin_add_overflow(base_offset, (int64_t)offset_delta, &offset)) {
            corrupt(st, i, "record offset or timestamp overflows int64");
            goto error;
        }
        skip = offset < min_offset;
        if (skip) {
            if (skip_nullable_bytes(&p, record_end, &problem) < 0
                || skip_nullable_bytes(&p, record_end, &problem) < 0) {
                corrupt(st, i, problem);
                goto error;
            }
            /* Rare (the first batch of a read that starts inside it), and header keys
             * must still be checked for UTF-8: read them and drop them. */
            headers = read_headers(st, i, &p, record_end);
            if (headers == NULL) {
                goto error;
            }
            Py_DECREF(headers);
            if (p != record_end) {
                corrupt(st, i, "record fields do not fill its declared length");
                goto error;
            }
            continue;
        }
        key = read_nullable_bytes(&p, record_end, &problem);
        if (key == NULL) {
            if (problem) {
                corrupt(st, i, problem);
            }
            goto error;
        }
        value = read_nullable_bytes(&p, record_end, &problem);
        if (value == NULL) {
            Py_DECREF(key);
            if (problem) {
                corrupt(st, i, problem);
            }
            goto error;
        }
        headers = read_headers(st, i, &p, record_end);
        if (headers == NULL) {
            Py_DECREF(key);
            Py_DECREF(value);
            goto error;
        }
        if (p != record_end) {
            Py_DECREF(key);
            Py_DECREF(value);
            Py_DECREF(headers);
            corrupt(st, i, "record fields do not fill its declared length");
            goto error;
        }
        py_offset = PyLong_FromLongLong(offset);
        /* Records of a batch often share a timestamp (a producer stamps many per
         * millisecond): they share its int too. */
        if (last_timestamp != NULL && timestamp == last_ts) {
            Py_INCREF(last_timestamp);
            py_timestamp = last_timestamp;
        }
        else {
            py_timestamp = PyLong_FromLongLong(timestamp);
            if (py_timestamp != NULL) {
                Py_XDECREF(last_timestamp);
                Py_INCREF(py_timestamp);
                last_timestamp = py_timestamp;
                last_ts = timestamp;
            }
        }
        if (py_offset == NULL || py_timestamp == NULL) {
            Py_XDECREF(py_offset);
            Py_XDECREF(py_timestamp);
            Py_DECREF(key);
            Py_DECREF(value);
            Py_DECREF(headers);
            goto error;
        }
        record = make_record(&mk, py_offset, py_timestamp, key, value, headers);
        if (record == NULL) {
            goto error;
        }
        PyList_SET_ITEM(records, kept, record);
        kept++;
    }
    if (p != limit) {
        PyErr_Format(st->corrupt_error, "%zd bytes follow the last of %zd records",
                     (Py_ssize_t)(limit - p), count);
        goto error;
    }
    /* The slots past `kept` are NULL: a shorter size is a valid list. */
    Py_SET_SIZE(records, kept);
    Py_XDECREF(last_timestamp);
    PyBuffer_Release(&view);
    return records;

error:
    /* A list with unset (NULL) slots is safe to release. */
    Py_XDECREF(records);
    Py_XDECREF(last_timestamp);
    PyBuffer_Release(&view);
    return NULL;
}

/* ---------------------------------------------------------------------- scanning */

#define PROBLEM_NO_KEY 1
#define PROBLEM_TIMESTAMP_OUT_OF_RANGE 2

/* 0 if the n bytes at p are UTF-8 (as PyUnicode_DecodeUTF8 "strict" judges it), 1 if
 * not, -1 with an exception set if the check itself failed. ASCII, the usual header key,
 * is checked here without making a string. */
static int
utf8_problem(const uint8_t *p, Py_ssize_t n)
{
    Py_ssize_t i;
    PyObject *text;
    for (i = 0; i < n; i++) {
        if (p[i] >= 0x80) {
            break;
        }
    }
    if (i == n) {
        return 0;
    }
    text = PyUnicode_DecodeUTF8((const char *)p, n, "strict");
    if (text != NULL) {
        Py_DECREF(text);
        return 0;
    }
    if (PyErr_ExceptionMatches(PyExc_UnicodeDecodeError)) {
        PyErr_Clear();
        return 1;
    }
    return -1;
}

/* The checks read_headers makes, without making the headers: 0, or -1 with an
 * exception set. */
static int
skip_headers(module_state *st, Py_ssize_t index, const uint8_t **pp, const uint8_t *end)
{
    int32_t count, i;
    const char *problem = NULL;
    int rc = read_varint(pp, end, &count);
    if (rc != 0) {
        corrupt(st, index, varint_problem(rc));
        return -1;
    }
    if (count == 0) {
        return 0;
    }
    if (count < 0 || count > (end - *pp) / 2) {
        corrupt(st, index, "header count is negative or larger than the record");
        return -1;
    }
    for (i = 0; i < count; i++) {
        int32_t n;
        rc = read_varint(pp, end, &n);
        if (rc != 0) {
            corrupt(st, index, varint_problem(rc));
            return -1;
        }
        if (n < 0 || n > end - *pp) {
            corrupt(st, index, "header key length is negative or overruns its record");
            return -1;
        }
        rc = utf8_problem(*pp, n);
        if (rc != 0) {
            if (rc > 0) {
                corrupt(st, index, "header key is not UTF-8");
            }
            return -1;
        }
        *pp += n;
        if (skip_nullable_bytes(pp, end, &problem) < 0) {
            corrupt(st, index, problem);
            return -1;
        }
    }
    return 0;
}

PyDoc_STRVAR(scan_records_doc,
"scan_records(buf, start, end, count, base_timestamp, need_keys, min_timestamp,\n"
"             max_timestamp, max_problems)\n"
"--\n\n"
"Check `count` records in buf[start:end] as a broker does before storing them;\n"
"return (max timestamp, problem count, [(index, problem), ...]). See\n"
"_records_py.scan_records.");

/* decode_records' walk without making records: the broker's produce path runs it on
 * every batch, so it allocates nothing per record (a header key that is not ASCII is
 * the exception: its UTF-8 check makes and drops a str). */
static PyObject *
scan_records(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    module_state *st = get_state(module);
    Py_buffer view;
    Py_ssize_t start, end, count, max_problems, i, problem_count = 0;
    long long base_timestamp, min_timestamp, max_timestamp;
    int need_keys, overflow;
    int64_t highest = -1;
    const uint8_t *p, *limit;
    PyObject *problems = NULL, *result = NULL;

    if (nargs != 9) {
        PyErr_Format(PyExc_TypeError, "scan_records() takes 9 arguments (%zd given)", nargs);
        return NULL;
    }
    start = PyLong_AsSsize_t(args[1]);
    end = PyLong_AsSsize_t(args[2]);
    count = PyLong_AsSsize_t(args[3]);
    base_timestamp = PyLong_AsLongLong(args[4]);
    if (PyErr_Occurred()) {
        return NULL;
    }
    need_keys = PyObject_IsTrue(args[5]);
    if (need_keys < 0) {
        return NULL;
    }
    if (!PyLong_Check(args[6]) || !PyLong_Check(args[7])) {
        PyErr_SetString(PyExc_TypeError, "min_timestamp and max_timestamp must be ints");
        return NULL;
    }
    min_timestamp = PyLong_AsLongLongAndOverflow(args[6], &overflow);
    if (overflow) {
        PyErr_SetString(PyExc_ValueError, "min_timestamp does not fit in int64");
        return NULL;
    }
    max_timestamp = PyLong_AsLongLongAndOverflow(args[7], &overflow);
    if (overflow) {
        PyErr_SetString(PyExc_ValueError, "max_timestamp does not fit in int64");
        return NULL;
    }
    max_problems = PyLong_Check(args[8]) ? PyLong_AsSsize_t(args[8]) : -1;
    if (PyErr_Occurred()) {
        return NULL;
    }
    if (max_problems < 0) {
        PyErr_SetString(PyExc_ValueError, "max_problems must be a non-negative int");
        return NULL;
    }
    if (PyObject_GetBuffer(args[0], &view, PyBUF_SIMPLE) < 0) {
        return NULL;
    }
    if (start < 0 || end < start || end > view.len || count < 0) {
        PyErr_Format(PyExc_ValueError, "bad records span [%zd, %zd) or count %zd",
                     start, end, count);
        goto done;
    }
    p = (const uint8_t *)view.buf + start;
    limit = (const uint8_t *)view.buf + end;
    if (count > (end - start) / MIN_RECORD_SIZE) {
        PyErr_Format(st->corrupt_error, "%zd records cannot fit in %zd bytes",
                     count, end - start);
        goto done;
    }
    problems = PyList_New(0);
    if (problems == NULL) {
        goto done;
    }
    for (i = 0; i < count; i++) {
        int32_t length, offset_delta, key_length;
        int64_t ts_delta, timestamp;
        const uint8_t *record_end;
        const char *problem = NULL;
        int kind = 0;
        int rc = read_varint(&p, limit, &length);
        if (rc != 0) {
            corrupt(st, i, varint_problem(rc));
            goto done;
        }
        if (length < 0 || length > limit - p) {
            corrupt(st, i, "record length is negative or overruns the batch");
            goto done;
        }
        record_end = p + length;
        if (p >= record_end) {
            corrupt(st, i, "record is truncated");
            goto done;
        }
        p++; /* attributes: unused */
        if ((rc = read_varlong(&p, record_end, &ts_delta)) != 0
            || (rc = read_varint(&p, record_end, &offset_delta)) != 0) {
            corrupt(st, i, varint_problem(rc));
            goto done;
        }
        if (__builtin_add_overflow(base_timestamp, ts_delta, &timestamp)) {
            corrupt(st, i, "record offset or timestamp overflows int64");
            goto done;
        }
        /* The key by hand (its length tells whether it is null), the value as
         * skip_nullable_bytes checks it. */
        if ((rc = read_varint(&p, record_end, &key_length)) != 0) {
            corrupt(st, i, varint_problem(rc));
            goto done;
        }
        if (key_length < -1) {
            corrupt(st, i, "negative length");
            goto done;
        }
        if (key_length > record_end - p) {
            corrupt(st, i, "key, value or header overruns its record");
            goto done;
        }
        if (key_length > 0) {
            p += key_length;
        }
        if (skip_nullable_bytes(&p, record_end, &problem) < 0) {
            corrupt(st, i, problem);
            goto done;
        }
        if (skip_headers(st, i, &p, record_end) < 0) {
            goto done;
        }
        if (p != record_end) {
            corrupt(st, i, "record fields do not fill its declared length");
            goto done;
        }
        if (offset_delta != i) {
            PyErr_Format(st->corrupt_error, "record %zd has offset delta %d", i,
                         (int)offset_delta);
            goto done;
        }
        if (timestamp > highest) {
            highest = timestamp;
        }
        if (need_keys && key_length == -1) {
            kind = PROBLEM_NO_KEY;
        }
        else if (timestamp != -1 && (timestamp < min_timestamp || timestamp > max_timestamp)) {
            kind = PROBLEM_TIMESTAMP_OUT_OF_RANGE;
        }
        if (kind) {
            problem_count++;
            if (PyList_GET_SIZE(problems) < max_problems) {
                PyObject *item = Py_BuildValue("(ni)", i, kind);
                if (item == NULL || PyList_Append(problems, item) < 0) {
                    Py_XDECREF(item);
                    goto done;
                }
                Py_DECREF(item);
            }
        }
    }
    if (p != limit) {
        PyErr_Format(st->corrupt_error, "%zd bytes follow the last of %zd records",
                     (Py_ssize_t)(limit - p), count);
        goto done;
    }
    result = Py_BuildValue("(LnO)", (long long)highest, problem_count, problems);

done:
    Py_XDECREF(problems);
    PyBuffer_Release(&view);
    return result;
}

/* ------------------------------------------------------------------------- encoding */

typedef struct {
    uint8_t *data;
    Py_ssize_t len;
    Py_ssize_t cap;
} wbuf;

static int
wb_reserve(wbuf *b, Py_ssize_t extra)
{
    Py_ssize_t need, cap;
    uint8_t *data;
    if (extra <= b->cap - b->len) {
        return 0;
    }
    if (extra > PY_SSIZE_T_MAX / 2 - b->len) {
        PyErr_NoMemory();
        return -1;
    }
    need = b->len + extra;
    cap = b->cap < 4096 ? 4096 : b->cap;
    while (cap < need) {
        cap *= 2;
    }
    data = PyMem_Realloc(b->data, (size_t)cap);
    if (data == NULL) {
        PyErr_NoMemory();
        return -1;
    }
    b->data = data;
    b->cap = cap;
    return 0;
}

/* Write zigzag(v) as a varint at p (room for 10 bytes needed); return bytes written. */
static inline int
put_varlong(uint8_t *p, int64_t v)
{
    uint64_t z = ((uint64_t)v << 1) ^ (uint64_t)(v >> 63);
    int n = 0;
    while (z >= 0x80) {
        p[n++] = (uint8_t)(z | 0x80);
        z >>= 7;
    }
    p[n++] = (uint8_t)z;
    return n;
}

/* A key, value or header value: None, or any C-contiguous buffer. */
typedef struct {
    const char *ptr;
    Py_ssize_t len; /* -1 for None */
    Py_buffer view;
    int has_view;
} bytes_arg;

static int
get_bytes_arg(PyObject *obj, bytes_arg *a, const char *what)
{
    a->has_view = 0;
    if (obj == Py_None) {
        a->ptr = NULL;
        a->len = -1;
        return 0;
    }
    if (PyBytes_Check(obj)) {
        a->ptr = PyBytes_AS_STRING(obj);
        a->len = PyBytes_GET_SIZE(obj);
        return 0;
    }
    if (PyObject_GetBuffer(obj, &a->view, PyBUF_SIMPLE) < 0) {
        if (PyErr_ExceptionMatches(PyExc_TypeError) || PyErr_ExceptionMatches(PyExc_BufferError)) {
            PyErr_Clear();
            PyErr_Format(PyExc_TypeError, "%s must be bytes-like or None, not %.100s",
                         what, Py_TYPE(obj)->tp_name);
        }
        return -1;
    }
    a->has_view = 1;
    a->ptr = a->view.buf;
    a->len = a->view.len;
    return 0;
}

static void
release_bytes_arg(bytes_arg *a)
{
    if (a->has_view) {
        PyBuffer_Release(&a->view);
        a->has_view = 0;
    }
}

/* Append a nullable byte string (length varint, bytes). */
static int
put_bytes_arg(module_state *st, wbuf *b, const bytes_arg *a)
{
    if (a->len > INT32_MAX) {
        PyErr_SetString(st->invalid_error, "a key, value or header is larger than 2 GiB");
        return -1;
    }
    if (wb_reserve(b, 5 + (a->len > 0 ? a->len : 0)) < 0) {
        return -1;
    }
    b->len += put_varlong(b->data + b->len, a->len);
    if (a->len > 0) {
        memcpy(b->data + b->len, a->ptr, (size_t)a->len);
        b->len += a->len;
    }
    return 0;
}

/* `obj` as a tuple of exactly `size` items (new reference): tuples (and subclasses such
 * as Record) are used as they are, lists copied; anything else is a TypeError. */
static PyObject *
as_fields(PyObject *obj, Py_ssize_t size, const char *what)
{
    PyObject *t;
    if (PyTuple_Check(obj)) {
        Py_INCREF(obj);
        t = obj;
    }
    else if (PyList_Check(obj)) {
        t = PyList_AsTuple(obj);
        if (t == NULL) {
            return NULL;
        }
    }
    else {
        PyErr_Format(PyExc_TypeError, "%s must be a tuple, not %.100s", what,
                     Py_TYPE(obj)->tp_name);
        return NULL;
    }
    if (size >= 0 && PyTuple_GET_SIZE(t) != size) {
        PyErr_Format(PyExc_TypeError, "%s must have %zd fields, not %zd", what, size,
                     PyTuple_GET_SIZE(t));
        Py_DECREF(t);
        return NULL;
    }
    return t;
}

static int
get_int64(module_state *st, PyObject *obj, const char *what, int64_t *out)
{
    int overflow;
    long long v;
    if (!PyLong_Check(obj)) {
        PyErr_Format(PyExc_TypeError, "%s must be an int, not %.100s", what,
                     Py_TYPE(obj)->tp_name);
        return -1;
    }
    v = PyLong_AsLongLongAndOverflow(obj, &overflow);
    if (overflow) {
        PyErr_Format(st->invalid_error, "%s does not fit in int64", what);
        return -1;
    }
    if (v == -1 && PyErr_Occurred()) {
        return -1;
    }
    *out = v;
    return 0;
}

static int
put_headers(module_state *st, wbuf *b, PyObject *headers_obj)
{
    PyObject *headers;
    Py_ssize_t i, n;
    if (headers_obj == Py_None) {
        if (wb_reserve(b, 1) < 0) {
            return -1;
        }
        b->data[b->len++] = 0;
        return 0;
    }
    if (!PyTuple_Check(headers_obj) && !PyList_Check(headers_obj)) {
        PyErr_Format(PyExc_TypeError, "headers must be a tuple or list, not %.100s",
                     Py_TYPE(headers_obj)->tp_name);
        return -1;
    }
    headers = as_fields(headers_obj, -1, "headers");
    if (headers == NULL) {
        return -1;
    }
    n = PyTuple_GET_SIZE(headers);
    if (n > INT32_MAX) {
        PyErr_SetString(st->invalid_error, "a record has more than 2**31 headers");
        goto error;
    }
    if (wb_reserve(b, 5) < 0) {
        goto error;
    }
    b->len += put_varlong(b->data + b->len, n);
    for (i = 0; i < n; i++) {
        PyObject *pair, *name;
        const char *utf8;
        Py_ssize_t utf8_len;
        bytes_arg value;
        pair = as_fields(PyTuple_GET_ITEM(headers, i), 2, "a header");
        if (pair == NULL) {
            goto error;
        }
        name = PyTuple_GET_ITEM(pair, 0);
        if (!PyUnicode_Check(name)) {
            PyErr_Format(PyExc_TypeError, "header key must be a str, not %.100s",
                         Py_TYPE(name)->tp_name);
            Py_DECREF(pair);
            goto error;
        }
        utf8 = PyUnicode_AsUTF8AndSize(name, &utf8_len);
        if (utf8 == NULL) {
            Py_DECREF(pair);
            goto error;
        }
        if (utf8_len > INT32_MAX) {
            PyErr_SetString(st->invalid_error, "a header key is larger than 2 GiB");
            Py_DECREF(pair);
            goto error;
        }
        if (wb_reserve(b, 5 + utf8_len) < 0) {
            Py_DECREF(pair);
            goto error;
        }
        b->len += put_varlong(b->data + b->len, utf8_len);
        memcpy(b->data + b->len, utf8, (size_t)utf8_len);
        b->len += utf8_len;
        if (get_bytes_arg(PyTuple_GET_ITEM(pair, 1), &value, "header value") < 0) {
            Py_DECREF(pair);
            goto error;
        }
        if (put_bytes_arg(st, b, &value) < 0) {
            release_bytes_arg(&value);
            Py_DECREF(pair);
            goto error;
        }
        release_bytes_arg(&value);
        Py_DECREF(pair);
    }
    Py_DECREF(headers);
    return 0;

error:
    Py_DECREF(headers);
    return -1;
}

/* Bytes put_varlong writes for v. */
static inline int
varlong_size(int64_t v)
{
    uint64_t z = ((uint64_t)v << 1) ^ (uint64_t)(v >> 63);
    int n = 1;
    while (z >= 0x80) {
        z >>= 7;
        n++;
    }
    return n;
}

/* Bytes of a nullable byte string's length varint and contents. */
static inline Py_ssize_t
bytes_arg_size(const bytes_arg *a)
{
    return varlong_size(a->len) + (a->len > 0 ? a->len : 0);
}

/* Append one record: length varint, then its body. Without headers (the usual case)
 * the body's size is known up front and everything is written in place; with headers
 * the body is written 5 bytes after the start (room for the largest length varint) and
 * moved back once its size is known, so each record is walked once either way. */
static int
put_record(module_state *st, wbuf *b, int64_t ts_delta, int32_t offset_delta,
           PyObject *key_obj, PyObject *value_obj, PyObject *headers_obj)
{
    Py_ssize_t record_start = b->len, body_start, body_len;
    uint8_t prefix[5];
    int prefix_len;
    bytes_arg key, value;

    if (get_bytes_arg(key_obj, &key, "key") < 0) {
        return -1;
    }
    if (get_bytes_arg(value_obj, &value, "value") < 0) {
        release_bytes_arg(&key);
        return -1;
    }
    if (headers_obj == Py_None
        || ((PyTuple_Check(headers_obj) || PyList_Check(headers_obj))
            && Py_SIZE(headers_obj) == 0)) {
        uint8_t *p;
        if (key.len > INT32_MAX || value.len > INT32_MAX) {
            PyErr_SetString(st->invalid_error, "a key, value or header is larger than 2 GiB");
            goto error;
        }
        body_len = 1 + varlong_size(ts_delta) + varlong_size(offset_delta)
                   + bytes_arg_size(&key) + bytes_arg_size(&value) + 1;
        if (body_len > INT32_MAX) {
            PyErr_SetString(st->invalid_error, "a record is larger than 2 GiB");
            goto error;
        }
        if (wb_reserve(b, 5 + body_len) < 0) {
            goto error;
        }
        p = b->data + b->len;
        p += put_varlong(p, body_len);
        *p++ = 0; /* attributes */
        p += put_varlong(p, ts_delta);
        p += put_varlong(p, offset_delta);
        p += put_varlong(p, key.len);
        if (key.len > 0) {
            memcpy(p, key.ptr, (size_t)key.len);
            p += key.len;
        }
        p += put_varlong(p, value.len);
        if (value.len > 0) {
            memcpy(p, value.ptr, (size_t)value.len);
            p += value.len;
        }
        *p++ = 0; /* header count */
        b->len = p - b->data;
        release_bytes_arg(&key);
        release_bytes_arg(&value);
        return 0;
    }
    if (wb_reserve(b, 5 + 1 + 10 + 5) < 0) {
        goto error;
    }
    b->len += 5;
    body_start = b->len;
    b->data[b->len++] = 0; /* attributes */
    b->len += put_varlong(b->data + b->len, ts_delta);
    b->len += put_varlong(b->data + b->len, offset_delta);
    if (put_bytes_arg(st, b, &key) < 0 || put_bytes_arg(st, b, &value) < 0) {
        goto error;
    }
    release_bytes_arg(&key);
    release_bytes_arg(&value);
    if (put_headers(st, b, headers_obj) < 0) {
        b->len = record_start;
        return -1;
    }
    body_len = b->len - body_start;
    if (body_len > INT32_MAX) {
        PyErr_SetString(st->invalid_error, "a record is larger than 2 GiB");
        b->len = record_start;
        return -1;
    }
    prefix_len = put_varlong(prefix, body_len);
    memcpy(b->data + record_start, prefix, (size_t)prefix_len);
    if (prefix_len < 5) {
        memmove(b->data + record_start + prefix_len, b->data + body_start, (size_t)body_len);
        b->len -= 5 - prefix_len;
    }
    return 0;

error:
    release_bytes_arg(&key);
    release_bytes_arg(&value);
    b->len = record_start;
    return -1;
}

/* Shared body of encode_entries and encode_records. */
static PyObject *
encode_common(PyObject *module, PyObject *const *args, Py_ssize_t nargs, int with_offsets)
{
    module_state *st = get_state(module);
    const char *name = with_offsets ? "encode_records" : "encode_entries";
    const char *item_name = with_offsets ? "a record" : "an entry";
    Py_ssize_t fields = with_offsets ? 5 : 4, nfixed = with_offsets ? 4 : 3;
    PyObject *items = NULL, *base_ts_obj, *result = NULL, *py_buf;
    int64_t base_offset = 0, base_ts = 0, max_ts = 0;
    int have_base_ts, last_delta = -1;
    Py_ssize_t header_room, i, n;
    wbuf b = {NULL, 0, 0};

    if (nargs != nfixed) {
        PyErr_Format(PyExc_TypeError, "%s() takes %zd arguments (%zd given)", name, nfixed,
                     nargs);
        return NULL;
    }
    if (with_offsets && get_int64(st, args[1], "base_offset", &base_offset) < 0) {
        return NULL;
    }
    base_ts_obj = args[nfixed - 2];
    have_base_ts = base_ts_obj != Py_None;
    if (have_base_ts && get_int64(st, base_ts_obj, "timestamp", &base_ts) < 0) {
        return NULL;
    }
    header_room = PyLong_AsSsize_t(args[nfixed - 1]);
    if (header_room == -1 && PyErr_Occurred()) {
        return NULL;
    }
    if (header_room < 0 || header_room > 4096) {
        PyErr_SetString(PyExc_ValueError, "header_room must be in [0, 4096]");
        return NULL;
    }
    if (PyTuple_Check(args[0])) {
        Py_INCREF(args[0]);
        items = args[0];
    }
    else {
        items = PySequence_Tuple(args[0]);
        if (items == NULL) {
            return NULL;
        }
    }
    /* Reserve beyond the header too, so that b.data is never NULL below. */
    if (wb_reserve(&b, header_room + 256) < 0) {
        goto done;
    }
    memset(b.data, 0, (size_t)header_room);
    b.len = header_room;
    n = PyTuple_GET_SIZE(items);
    for (i = 0; i < n; i++) {
        PyObject *item = as_fields(PyTuple_GET_ITEM(items, i), fields, item_name);
        PyObject *ts_obj, *key, *value, *headers;
        int64_t ts, ts_delta, offset_delta;
        int rc;
        if (item == NULL) {
            goto done;
        }
        if (with_offsets) {
            /* Record fields: offset, timestamp, key, value, headers. */
            int64_t offset;
            ts_obj = PyTuple_GET_ITEM(item, 1);
            key = PyTuple_GET_ITEM(item, 2);
            value = PyTuple_GET_ITEM(item, 3);
            headers = PyTuple_GET_ITEM(item, 4);
            if (get_int64(st, PyTuple_GET_ITEM(item, 0), "offset", &offset) < 0) {
                Py_DECREF(item);
                goto done;
            }
            if (__builtin_sub_overflow(offset, base_offset, &offset_delta)
                || offset_delta <= last_delta || offset_delta > INT32_MAX) {
                PyErr_Format(st->invalid_error,
                             "record offset %lld is out of order or out of range for base "
                             "offset %lld", (long long)offset, (long long)base_offset);
                Py_DECREF(item);
                goto done;
            }
        }
        else {
            /* Entry fields: key, value, timestamp, headers. */
            key = PyTuple_GET_ITEM(item, 0);
            value = PyTuple_GET_ITEM(item, 1);
            ts_obj = PyTuple_GET_ITEM(item, 2);
            headers = PyTuple_GET_ITEM(item, 3);
            if (i > INT32_MAX) {
                PyErr_SetString(st->invalid_error, "a batch holds at most 2**31 records");
                Py_DECREF(item);
                goto done;
            }
            offset_delta = i;
        }
        if (get_int64(st, ts_obj, "timestamp", &ts) < 0) {
            Py_DECREF(item);
            goto done;
        }
        if (!have_base_ts) {
            base_ts = ts;
            have_base_ts = 1;
        }
        if (i == 0 || ts > max_ts) {
            max_ts = ts;
        }
        if (__builtin_sub_overflow(ts, base_ts, &ts_delta)) {
            PyErr_Format(st->invalid_error, "timestamp delta %lld - %lld does not fit in int64",
                         (long long)ts, (long long)base_ts);
            Py_DECREF(item);
            goto done;
        }
        rc = put_record(st, &b, ts_delta, (int32_t)offset_delta, key, value, headers);
        Py_DECREF(item);
        if (rc < 0) {
            goto done;
        }
        last_delta = (int)offset_delta;
    }
    py_buf = PyByteArray_FromStringAndSize((const char *)b.data, b.len);
    if (py_buf == NULL) {
        goto done;
    }
    if (have_base_ts && n > 0) {
        result = Py_BuildValue("(NnLLi)", py_buf, n, (long long)base_ts, (long long)max_ts,
                               last_delta);
    }
    else if (have_base_ts) {
        result = Py_BuildValue("(NnLOi)", py_buf, n, (long long)base_ts, Py_None, last_delta);
    }
    else {
        result = Py_BuildValue("(NnOOi)", py_buf, n, Py_None, Py_None, last_delta);
    }

done:
    PyMem_Free(b.data);
    Py_XDECREF(items);
    return result;
}

PyDoc_STRVAR(encode_entries_doc,
"encode_entries(entries, base_timestamp, header_room)\n"
"--\n\n"
"Encode (key, value, timestamp_ms, headers) entries with offset deltas 0, 1, ...\n"
"Returns (buffer, count, base_timestamp, max_timestamp, last_offset_delta).");

static PyObject *
encode_entries(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    return encode_common(module, args, nargs, 0);
}

PyDoc_STRVAR(encode_records_doc,
"encode_records(records, base_offset, base_timestamp, header_room)\n"
"--\n\n"
"Encode Records keeping their offsets (delta = offset - base_offset).");

static PyObject *
encode_records(PyObject *module, PyObject *const *args, Py_ssize_t nargs)
{
    return encode_common(module, args, nargs, 1);
}

/* -------------------------------------------------------------------- batch builder */

/* A batch encoded as its records arrive, for producers: `add` writes the record into
 * the buffer at once (no entry tuple kept per record, no second pass at send time) and
 * returns the record's handle, made here too. `take` hands the buffer over in
 * encode_entries' result format; records.py frames it. The bytes are those
 * encode_entries writes for the same entries (the tests check it). */
typedef struct {
    PyObject_HEAD
    wbuf b;
    Py_ssize_t limit;
    Py_ssize_t count;
    int64_t base_ts;
    int64_t max_ts;
    PyObject *owner;           /* first item of each handle; None if not given */
    PyTypeObject *handle_type; /* NULL: `add` returns the record's index */
    PyObject *clock;           /* NULL: the wall clock; else called for milliseconds */
    int taken;
} builder_object;

/* Wall-clock milliseconds since the epoch: what time.time_ns() // 1_000_000 gives. */
static int64_t
now_ms(void)
{
#ifdef _WIN32
    FILETIME ft;
    ULARGE_INTEGER t;
    GetSystemTimePreciseAsFileTime(&ft);
    t.LowPart = ft.dwLowDateTime;
    t.HighPart = ft.dwHighDateTime;
    return (int64_t)((t.QuadPart - 116444736000000000ULL) / 10000);
#else
    struct timespec t;
    clock_gettime(CLOCK_REALTIME, &t);
    return (int64_t)t.tv_sec * 1000 + t.tv_nsec / 1000000;
#endif
}

static PyObject *
builder_new(PyTypeObject *type, PyObject *args, PyObject *kwargs)
{
    static char *keywords[] = {"limit", "header_room", "owner", "handle_type", "clock", NULL};
    Py_ssize_t limit, header_room;
    PyObject *owner = Py_None, *handle_type = Py_None, *clock = Py_None;
    builder_object *self;
    if (!PyArg_ParseTupleAndKeywords(args, kwargs, "nn|OOO:BatchBuilder", keywords, &limit,
                                     &header_room, &owner, &handle_type, &clock)) {
        return NULL;
    }
    if (clock != Py_None && !PyCallable_Check(clock)) {
        PyErr_SetString(PyExc_TypeError, "clock must be None or callable");
        return NULL;
    }
    if (header_room < 0 || header_room > 4096) {
        PyErr_SetString(PyExc_ValueError, "header_room must be in [0, 4096]");
        return NULL;
    }
    if (handle_type != Py_None
        && (!PyType_Check(handle_type)
            || !PyType_IsSubtype((PyTypeObject *)handle_type, &PyTuple_Type))) {
        PyErr_SetString(PyExc_TypeError, "handle_type must be None or a subclass of tuple");
        return NULL;
    }
    self = (builder_object *)type->tp_alloc(type, 0);
    if (self == NULL) {
        return NULL;
    }
    if (wb_reserve(&self->b, header_room + 256) < 0) {
        Py_DECREF(self);
        return NULL;
    }
    memset(self->b.data, 0, (size_t)header_room);
    self->b.len = header_room;
    self->limit = limit;
    Py_INCREF(owner);
    self->owner = owner;
    if (handle_type != Py_None) {
        Py_INCREF(handle_type);
        self->handle_type = (PyTypeObject *)handle_type;
    }
    if (clock != Py_None) {
        Py_INCREF(clock);
        self->clock = clock;
    }
    return (PyObject *)self;
}

static int
builder_traverse(builder_object *self, visitproc visit, void *arg)
{
    Py_VISIT(Py_TYPE(self));
    Py_VISIT(self->owner);
    Py_VISIT(self->handle_type);
    Py_VISIT(self->clock);
    return 0;
}

static int
builder_clear(builder_object *self)
{
    Py_CLEAR(self->owner);
    Py_CLEAR(self->handle_type);
    Py_CLEAR(self->clock);
    return 0;
}

static void
builder_dealloc(builder_object *self)
{
    PyTypeObject *type = Py_TYPE(self);
    PyObject_GC_UnTrack(self);
    builder_clear(self);
    PyMem_Free(self->b.data);
    type->tp_free((PyObject *)self);
    Py_DECREF(type);
}

/* A handle: handle_type(owner, index, timestamp), made in place (see make_record). */
static PyObject *
make_handle(builder_object *self, Py_ssize_t index, int64_t timestamp)
{
    PyTypeObject *type = self->handle_type;
    PyObject *py_index, *py_ts, *handle;
    if (type == NULL) {
        return PyLong_FromSsize_t(index);
    }
    py_index = PyLong_FromSsize_t(index);
    py_ts = PyLong_FromLongLong(timestamp);
    handle = (py_index && py_ts) ? type->tp_alloc(type, 3) : NULL;
    if (handle == NULL) {
        Py_XDECREF(py_index);
        Py_XDECREF(py_ts);
        return NULL;
    }
    Py_INCREF(self->owner);
    PyTuple_SET_ITEM(handle, 0, self->owner);
    PyTuple_SET_ITEM(handle, 1, py_index);
    PyTuple_SET_ITEM(handle, 2, py_ts);
    return handle;
}

PyDoc_STRVAR(builder_add_doc,
"add(key, value, timestamp_ms, headers)\n"
"--\n\n"
"Encode one record into the batch and return its handle (or index); None, adding\n"
"nothing, if the batch holds records and this one would take it past its limit.\n"
"A timestamp of None is the clock's now (the wall clock's without a clock).");

static PyObject *
builder_add(builder_object *self, PyObject *const *args, Py_ssize_t nargs)
{
    module_state *st = PyType_GetModuleState(Py_TYPE(self));
    int64_t ts, ts_delta;
    Py_ssize_t start;
    if (nargs != 4) {
        PyErr_Format(PyExc_TypeError, "add() takes 4 arguments (%zd given)", nargs);
        return NULL;
    }
    if (self->taken) {
        PyErr_SetString(PyExc_ValueError, "the batch was already taken");
        return NULL;
    }
    if (args[2] != Py_None) {
        if (get_int64(st, args[2], "timestamp", &ts) < 0) {
            return NULL;
        }
    }
    else if (self->clock == NULL) {
        ts = now_ms();
    }
    else {
        PyObject *now = PyObject_CallNoArgs(self->clock);
        int rc;
        if (now == NULL) {
            return NULL;
        }
        rc = get_int64(st, now, "timestamp", &ts);
        Py_DECREF(now);
        if (rc < 0) {
            return NULL;
        }
    }
    if (self->count > INT32_MAX) {
        PyErr_SetString(st->invalid_error, "a batch holds at most 2**31 records");
        return NULL;
    }
    if (__builtin_sub_overflow(ts, self->count ? self->base_ts : ts, &ts_delta)) {
        PyErr_Format(st->invalid_error, "timestamp delta %lld - %lld does not fit in int64",
                     (long long)ts, (long long)self->base_ts);
        return NULL;
    }
    start = self->b.len;
    if (put_record(st, &self->b, ts_delta, (int32_t)self->count, args[0], args[1], args[3])
        < 0) {
        return NULL;
    }
    if (self->count > 0 && self->b.len > self->limit) {
        self->b.len = start;
        Py_RETURN_NONE;
    }
    if (self->count == 0) {
        self->base_ts = self->max_ts = ts;
    }
    else if (ts > self->max_ts) {
        self->max_ts = ts;
    }
    return make_handle(self, self->count++, ts);
}

PyDoc_STRVAR(builder_add_many_doc,
"add_many(keys, values, start, timestamp_ms, headers, check)\n"
"--\n\n"
"Encode values[start:] (keys[start:] their keys, or None for null keys), all with\n"
"this timestamp and these headers, until one would take the batch past its limit;\n"
"return how many were added. With `check`, every key and value from `start` on is\n"
"type-checked first, so that a bad one raises before any record is added.");

/* The sequence `obj` as a list or tuple (new reference) for add_many. */
static PyObject *
as_sequence(PyObject *obj, const char *what)
{
    if (PyList_Check(obj) || PyTuple_Check(obj)) {
        Py_INCREF(obj);
        return obj;
    }
    PyErr_Format(PyExc_TypeError, "%s must be a list or tuple, not %.100s", what,
                 Py_TYPE(obj)->tp_name);
    return NULL;
}

/* How many records add_many may read now: the shorter list's length (see there). */
static inline Py_ssize_t
item_count(PyObject *keys, PyObject *values)
{
    Py_ssize_t n = PySequence_Fast_GET_SIZE(values);
    if (keys != NULL && PySequence_Fast_GET_SIZE(keys) < n) {
        n = PySequence_Fast_GET_SIZE(keys);
    }
    return n;
}

/* Raise what put_record would for a key or value that is not None or bytes-like. */
static int
check_bytes_item(PyObject *obj, const char *what)
{
    bytes_arg a;
    if (obj == Py_None || PyBytes_Check(obj)) {
        return 0;
    }
    if (get_bytes_arg(obj, &a, what) < 0) {
        return -1;
    }
    release_bytes_arg(&a);
    return 0;
}

static PyObject *
builder_add_many(builder_object *self, PyObject *const *args, Py_ssize_t nargs)
{
    module_state *st = PyType_GetModuleState(Py_TYPE(self));
    PyObject *keys = NULL, *values = NULL, *result = NULL;
    Py_ssize_t start, n, i, added = 0;
    int64_t ts, ts_delta;
    int check;
    if (nargs != 6) {
        PyErr_Format(PyExc_TypeError, "add_many() takes 6 arguments (%zd given)", nargs);
        return NULL;
    }
    if (self->taken) {
        PyErr_SetString(PyExc_ValueError, "the batch was already taken");
        return NULL;
    }
    if ((values = as_sequence(args[1], "values")) == NULL) {
        return NULL;
    }
    n = PySequence_Fast_GET_SIZE(values);
    if (args[0] != Py_None) {
        if ((keys = as_sequence(args[0], "keys")) == NULL) {
            goto done;
        }
        if (PySequence_Fast_GET_SIZE(keys) != n) {
            PyErr_Format(PyExc_ValueError, "%zd keys for %zd values",
                         PySequence_Fast_GET_SIZE(keys), n);
            goto done;
        }
    }
    start = PyLong_AsSsize_t(args[2]);
    if (start == -1 && PyErr_Occurred()) {
        goto done;
    }
    if (start < 0 || start > n) {
        PyErr_Format(PyExc_ValueError, "start %zd is outside [0, %zd]", start, n);
        goto done;
    }
    if (get_int64(st, args[3], "timestamp", &ts) < 0) {
        goto done;
    }
    check = PyObject_IsTrue(args[5]);
    if (check < 0) {
        goto done;
    }
    /* The lists are read in place (a copy per call would cost O(len) for every batch a
     * long run fills): each item is held while in use and the lengths are read again
     * at every step, so a list changed under us (by code a buffer export runs) is read
     * safely, if not meaningfully. */
    for (i = start; check && i < item_count(keys, values); i++) {
        int rc = 0;
        PyObject *key = keys == NULL ? NULL : PySequence_Fast_GET_ITEM(keys, i);
        PyObject *value = PySequence_Fast_GET_ITEM(values, i);
        Py_XINCREF(key);
        Py_INCREF(value);
        if (key != NULL) {
            rc = check_bytes_item(key, "key");
        }
        if (rc == 0) {
            rc = check_bytes_item(value, "value");
        }
        Py_XDECREF(key);
        Py_DECREF(value);
        if (rc < 0) {
            goto done;
        }
    }
    for (i = start; i < item_count(keys, values); i++) {
        Py_ssize_t mark = self->b.len;
        PyObject *key, *value;
        int rc;
        if (self->count > INT32_MAX) {
            PyErr_SetString(st->invalid_error, "a batch holds at most 2**31 records");
            goto done;
        }
        if (__builtin_sub_overflow(ts, self->count ? self->base_ts : ts, &ts_delta)) {
            PyErr_Format(st->invalid_error, "timestamp delta %lld - %lld does not fit in int64",
                         (long long)ts, (long long)self->base_ts);
            goto done;
        }
        key = keys == NULL ? Py_None : PySequence_Fast_GET_ITEM(keys, i);
        value = PySequence_Fast_GET_ITEM(values, i);
        Py_INCREF(key);
        Py_INCREF(value);
        rc = put_record(st, &self->b, ts_delta, (int32_t)self->count, key, value, args[4]);
        Py_DECREF(key);
        Py_DECREF(value);
        if (rc < 0) {
            goto done;
        }
        if (self->count > 0 && self->b.len > self->limit) {
            self->b.len = mark;
            break;
        }
        if (self->count == 0) {
            self->base_ts = self->max_ts = ts;
        }
        else if (ts > self->max_ts) {
            self->max_ts = ts;
        }
        self->count++;
        added++;
    }
    result = PyLong_FromSsize_t(added);

done:
    Py_XDECREF(keys);
    Py_XDECREF(values);
    return result;
}

PyDoc_STRVAR(builder_take_doc,
"take()\n"
"--\n\n"
"End the batch: (buffer, count, base_timestamp, max_timestamp, last_offset_delta), as\n"
"encode_entries returns them.");

static PyObject *
builder_take(builder_object *self, PyObject *Py_UNUSED(ignored))
{
    PyObject *buf;
    if (self->taken) {
        PyErr_SetString(PyExc_ValueError, "the batch was already taken");
        return NULL;
    }
    buf = PyByteArray_FromStringAndSize((const char *)self->b.data, self->b.len);
    if (buf == NULL) {
        return NULL;
    }
    self->taken = 1;
    PyMem_Free(self->b.data);
    self->b.data = NULL;
    self->b.cap = 0;
    if (self->count == 0) {
        return Py_BuildValue("(NnOOi)", buf, self->count, Py_None, Py_None, -1);
    }
    return Py_BuildValue("(NnLLi)", buf, self->count, (long long)self->base_ts,
                         (long long)self->max_ts, (int)(self->count - 1));
}

static PyObject *
builder_get_count(builder_object *self, void *Py_UNUSED(closure))
{
    return PyLong_FromSsize_t(self->count);
}

static PyObject *
builder_get_size(builder_object *self, void *Py_UNUSED(closure))
{
    return PyLong_FromSsize_t(self->b.len);
}

static PyObject *
builder_get_full(builder_object *self, void *Py_UNUSED(closure))
{
    return PyBool_FromLong(self->b.len >= self->limit);
}

static PyObject *
builder_get_owner(builder_object *self, void *Py_UNUSED(closure))
{
    Py_INCREF(self->owner);
    return self->owner;
}

static PyMethodDef builder_methods[] = {
    {"add", (PyCFunction)(void (*)(void))builder_add, METH_FASTCALL, builder_add_doc},
    {"add_many", (PyCFunction)(void (*)(void))builder_add_many, METH_FASTCALL,
     builder_add_many_doc},
    {"take", (PyCFunction)builder_take, METH_NOARGS, builder_take_doc},
    {NULL, NULL, 0, NULL},
};

static PyGetSetDef builder_getset[] = {
    {"count", (getter)builder_get_count, NULL, "records added", NULL},
    {"size", (getter)builder_get_size, NULL, "bytes so far, header room included", NULL},
    {"full", (getter)builder_get_full, NULL, "whether size has reached the limit", NULL},
    {"owner", (getter)builder_get_owner, NULL, "first item of each handle", NULL},
    {NULL, NULL, NULL, NULL, NULL},
};

static PyType_Slot builder_slots[] = {
    {Py_tp_doc, "BatchBuilder(limit, header_room, owner=None, handle_type=None, clock=None)\n"
                "--\n\n"
                "A record batch encoded as records are added; see _records_py.BatchBuilder."},
    {Py_tp_new, builder_new},
    {Py_tp_dealloc, builder_dealloc},
    {Py_tp_traverse, builder_traverse},
    {Py_tp_clear, builder_clear},
    {Py_tp_methods, builder_methods},
    {Py_tp_getset, builder_getset},
    {0, NULL},
};

static PyType_Spec builder_spec = {
    .name = "streamlog.log._records_c.BatchBuilder",
    .basicsize = sizeof(builder_object),
    .flags = Py_TPFLAGS_DEFAULT | Py_TPFLAGS_HAVE_GC | Py_TPFLAGS_IMMUTABLETYPE,
    .slots = builder_slots,
};

/* --------------------------------------------------------------------------- module */

PyDoc_STRVAR(murmur2_doc,
"murmur2(data) -> int\n\n"
"Kafka's Utils.murmur2 (MurmurHash2, seed 0x9747b28c) of a bytes-like object, as a\n"
"signed 32-bit int: the same value as streamlog.log.partitioner.murmur2_py.");

static PyObject *
murmur2(PyObject *self, PyObject *arg)
{
    Py_buffer view;
    if (PyObject_GetBuffer(arg, &view, PyBUF_SIMPLE) < 0) {
        return NULL;
    }
    const unsigned char *data = (const unsigned char *)view.buf;
    Py_ssize_t length = view.len;
    const uint32_t m = 0x5bd1e995u;
    uint32_t h = 0x9747b28cu ^ (uint32_t)length;
    Py_ssize_t words = length / 4;
    for (Py_ssize_t i = 0; i < words; i++) {
        const unsigned char *p = data + 4 * i;
        uint32_t k = (uint32_t)p[0] | ((uint32_t)p[1] << 8) | ((uint32_t)p[2] << 16)
                     | ((uint32_t)p[3] << 24);
        k *= m;
        k ^= k >> 24;
        k *= m;
        h *= m;
        h ^= k;
    }
    Py_ssize_t tail = length & 3, base = length - tail;
    if (tail == 3) {
        h ^= (uint32_t)data[base + 2] << 16;
    }
    if (tail >= 2) {
        h ^= (uint32_t)data[base + 1] << 8;
    }
    if (tail >= 1) {
        h ^= (uint32_t)data[base];
        h *= m;
    }
    h ^= h >> 13;
    h *= m;
    h ^= h >> 15;
    PyBuffer_Release(&view);
    return PyLong_FromLong((long)(int32_t)h);
}

static PyMethodDef methods[] = {
    {"murmur2", (PyCFunction)murmur2, METH_O, murmur2_doc},
    {"decode_records", (PyCFunction)(void (*)(void))decode_records, METH_FASTCALL,
     decode_records_doc},
    {"scan_records", (PyCFunction)(void (*)(void))scan_records, METH_FASTCALL,
     scan_records_doc},
    {"encode_entries", (PyCFunction)(void (*)(void))encode_entries, METH_FASTCALL,
     encode_entries_doc},
    {"encode_records", (PyCFunction)(void (*)(void))encode_records, METH_FASTCALL,
     encode_records_doc},
    {NULL, NULL, 0, NULL},
};

static PyObject *
import_attr(const char *module_name, const char *attr)
{
    PyObject *mod = PyImport_ImportModule(module_name), *obj;
    if (mod == NULL) {
        return NULL;
    }
    obj = PyObject_GetAttrString(mod, attr);
    Py_DECREF(mod);
    return obj;
}

static int
exec_module(PyObject *module)
{
    module_state *st = get_state(module);
    PyTypeObject *record_type;
    PyObject *builder_type;
    st->corrupt_error = import_attr("streamlog.log.errors", "CorruptRecordError");
    if (st->corrupt_error == NULL) {
        return -1;
    }
    st->invalid_error = import_attr("streamlog.log.errors", "InvalidRecordError");
    if (st->invalid_error == NULL) {
        return -1;
    }
    st->record_type = import_attr("streamlog.log._records_py", "Record");
    if (st->record_type == NULL) {
        return -1;
    }
    record_type = (PyTypeObject *)st->record_type;
    if (!PyType_Check(st->record_type) || !PyType_IsSubtype(record_type, &PyTuple_Type)) {
        PyErr_SetString(PyExc_ImportError, "streamlog.log._records_py.Record must subclass tuple");
        return -1;
    }
    builder_type = PyType_FromModuleAndSpec(module, &builder_spec, NULL);
    if (builder_type == NULL) {
        return -1;
    }
    if (PyModule_AddObjectRef(module, "BatchBuilder", builder_type) < 0) {
        Py_DECREF(builder_type);
        return -1;
    }
    Py_DECREF(builder_type);
    return 0;
}

static int
traverse_module(PyObject *module, visitproc visit, void *arg)
{
    module_state *st = get_state(module);
    Py_VISIT(st->corrupt_error);
    Py_VISIT(st->invalid_error);
    Py_VISIT(st->record_type);
    return 0;
}

static int
clear_module(PyObject *module)
{
    module_state *st = get_state(module);
    Py_CLEAR(st->corrupt_error);
    Py_CLEAR(st->invalid_error);
    Py_CLEAR(st->record_type);
    return 0;
}

static void
free_module(void *module)
{
    clear_module((PyObject *)module);
}

static PyModuleDef_Slot slots[] = {
    {Py_mod_exec, exec_module},
    {0, NULL},
};

static struct PyModuleDef moduledef = {
    PyModuleDef_HEAD_INIT,
    .m_name = "streamlog.log._records_c",
    .m_doc = "RecordBatch v2 record loops in C; see streamlog/log/_records_py.py.",
    .m_size = sizeof(module_state),
    .m_methods = methods,
    .m_slots = slots,
    .m_traverse = traverse_module,
    .m_clear = clear_module,
    .m_free = free_module,
};

PyMODINIT_FUNC
PyInit__records_c(void)
{
    return PyModuleDef_Init(&moduledef);
}
