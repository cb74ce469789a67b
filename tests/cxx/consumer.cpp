/*
 * A C++ program that uses clink: every public header compiles as C++, the
 * types can be named without `struct` and value-initialized, and a call goes
 * from one node to another (plaintext on loopback: no certificates needed).
 * Types and functions never share a name, or `clink_pool_call pc{};` would
 * not compile (the function would hide the type).
 */
#include <clink/clink.h>
#include <clink/methods.h>

#include <cstdio>
#include <cstring>

static void echo(clink_req *req, void *)
{
    size_t len = 0;
    const uint8_t *data = clink_req_data(req, &len);
    iovec iov{};
    iov.iov_base = const_cast<uint8_t *>(data);
    iov.iov_len = len;
    if (clink_req_respond(req, &iov, 1) < 0) {
        std::fprintf(stderr, "respond failed\n");
    }
}

static int fail(const char *what, int ret)
{
    std::fprintf(stderr, "%s: %s\n", what, clink_strerror(ret));
    return 1;
}

int main()
{
    std::printf("clink_strerror(-1001): %s\n", clink_strerror(-1001)); /* what the install test checks first */
    /* The names that once were both a type and a function. */
    clink_conn_status st{};
    clink_node_stats ns{};
    clink_pool_stats ps{};
    clink_pool_call pc{};
    clink_err_kind kind = clink_err_kind_of(-CLINK_ETLS);
    (void)ps;
    (void)pc;
    if (kind != CLINK_KIND_TLS) {
        std::fprintf(stderr, "clink_err_kind_of(-CLINK_ETLS) is %s\n", clink_err_kind_name(kind));
        return 1;
    }

    clink_node_opts o = clink_node_opts_default;
    o.workers = 1;
    o.allow_plaintext = 1;
    o.secure_transport = CLINK_SECURE_PLAINTEXT;
    clink_node *leaf = nullptr, *agg = nullptr;
    int ret;
    if ((ret = clink_node_new(&o, &leaf)) < 0 ||
        (ret = clink_node_register(leaf, CLINK_TOOL_ECHO, echo, nullptr)) < 0 ||
        (ret = clink_node_listen(leaf, "127.0.0.1", 0)) < 0 || (ret = clink_node_start(leaf)) < 0) {
        return fail("leaf", ret);
    }
    if ((ret = clink_node_new(&o, &agg)) < 0 || (ret = clink_node_start(agg)) < 0) {
        return fail("aggregator", ret);
    }
    clink_connect_opts co{};
    co.host = "127.0.0.1";
    co.port = clink_node_port(leaf);
    co.mode = CLINK_MODE_PLAIN;
    co.timeout_ms = 5000;
    clink_conn *conn = nullptr;
    char err[256] = "";
    if ((ret = clink_connect_sync(agg, &co, &conn, err, sizeof(err))) < 0) {
        std::fprintf(stderr, "connect: %s\n", err);
        return 1;
    }
    clink_msg resp{};
    if ((ret = clink_call_sync(conn, CLINK_TOOL_ECHO, "from C++", 8, 5000, &resp)) < 0) {
        return fail("call", ret);
    }
    int same = resp.len == 8 && std::memcmp(resp.data, "from C++", 8) == 0;
    clink_msg_free(&resp);
    if ((ret = clink_conn_get_status(conn, &st)) < 0) {
        return fail("status", ret);
    }
    clink_node_get_stats(agg, &ns);
    std::printf("echo %s; link %s, %llu call(s) ok\n", same ? "matches" : "DIFFERS", st.state,
                static_cast<unsigned long long>(ns.calls_ok));
    clink_conn_close(conn);
    clink_node_free(agg);
    clink_node_free(leaf);
    return same && ns.calls_ok == 1 ? 0 : 1;
}
