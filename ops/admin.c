/*
 * The requests clink-admin makes of each node (clink/admin.h): GET
 * /cluster, POST /config and POST /restart. ops.c logs the administrator in
 * and sends the answer; this file builds it. Editing and restarting are the
 * application's (callbacks the server layer registers): the ops endpoint
 * reads and writes no config file and never touches the process.
 */
#include "ops/ops_int.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "clink/http.h"

#define MAX_PEERS 256

/* A JSON string member, or NULL if absent or not a string. */
static const char *str_member(const cJSON *o, const char *name)
{
    return cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(o, name));
}

static void json_out(struct clink__sbuf *out, cJSON *root)
{
    char *text = root ? cJSON_PrintUnformatted(root) : NULL;
    if (text == NULL) {
        out->err = 1;
    } else {
        clink__sb_printf(out, "%s\n", text);
    }
    cJSON_free(text);
    cJSON_Delete(root);
}

static int refused(struct clink__sbuf *out, int status, const char *why)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "outcome", "refused");
    cJSON_AddStringToObject(o, "why", why);
    json_out(out, o);
    return status;
}

/* {"key": K, "value": V} or {"set": [{"key": K, "value": V}, ...]}: the pairs, or 0 if the body is not that. */
static size_t pairs_of(const cJSON *root, const char **keys, const char **values, size_t cap)
{
    const cJSON *set = cJSON_GetObjectItemCaseSensitive(root, "set");
    const cJSON *one = cJSON_IsArray(set) ? NULL : root, *it;
    size_t n = 0;
    if (one != NULL) {
        keys[0] = str_member(one, "key");
        values[0] = str_member(one, "value");
        n = 1;
    } else {
        cJSON_ArrayForEach(it, set)
        {
            if (n == cap || !cJSON_IsObject(it)) {
                return 0;
            }
            keys[n] = str_member(it, "key");
            values[n] = str_member(it, "value");
            n++;
        }
    }
    for (size_t i = 0; i < n; i++) {
        if (keys[i] == NULL || values[i] == NULL || keys[i][0] == '\0' || strlen(keys[i]) >= 64 ||
            strlen(values[i]) >= 4096) {
            return 0;
        }
    }
    return n;
}

int clink__ops_config(clink_ops_config_fn fn, void *user, const uint8_t *body, size_t len, const char *who,
                      struct clink__sbuf *out)
{
    if (fn == NULL) {
        return refused(out, 501, "this node has no config file to edit (it was built from options)");
    }
    cJSON *root = body ? cJSON_ParseWithLength((const char *)body, len) : NULL;
    const char *keys[16], *values[16];
    size_t n = cJSON_IsObject(root) ? pairs_of(root, keys, values, 16) : 0;
    int status;
    if (n == 0) {
        status = refused(out, 400,
                         "expected {\"key\": \"ssl_ca\", \"value\": \"...\"} or {\"set\": [{\"key\": ..., "
                         "\"value\": ...}, ...]} (1 to 16 keys, each under 64 bytes)");
    } else {
        char json[4096];
        json[0] = '\0';
        int ret = fn(user, n, keys, values, who, json, sizeof(json));
        clink__sb_printf(out, "%s\n", json[0] ? json : "{}");
        status = ret == 0 ? 200 : 409;
    }
    cJSON_Delete(root);
    return status;
}

int clink__ops_issuer(clink_ops_issuer_fn fn, void *user, const uint8_t *body, size_t len, const char *who,
                      struct clink__sbuf *out)
{
    if (fn == NULL) {
        return refused(out, 501, "this node has no accounts to change");
    }
    cJSON *root = body ? cJSON_ParseWithLength((const char *)body, len) : NULL;
    const char *from = cJSON_IsObject(root) ? str_member(root, "from") : NULL;
    const char *to = cJSON_IsObject(root) ? str_member(root, "to") : NULL;
    int status;
    if (from == NULL || to == NULL || from[0] == '\0' || to[0] == '\0' || strlen(from) > 256 || strlen(to) > 256) {
        status = refused(out, 400, "expected {\"from\": \"/CN=old CA\", \"to\": \"/CN=new CA\"}");
    } else {
        char json[1024] = "";
        int ret = fn(user, from, to, who, json, sizeof(json));
        clink__sb_printf(out, "%s\n", json[0] ? json : "{}");
        status = ret == 0 ? 200 : 409;
    }
    cJSON_Delete(root);
    return status;
}

int clink__ops_renew(clink_ops_renew_fn fn, void *user, int csr, const uint8_t *body, size_t len, const char *who,
                     struct clink__sbuf *out)
{
    if (fn == NULL) {
        return refused(out, 501, "this node cannot renew its certificate here");
    }
    cJSON *root = NULL;
    const char *cert = NULL;
    if (!csr) {
        root = body ? cJSON_ParseWithLength((const char *)body, len) : NULL;
        cert = cJSON_IsObject(root) ? str_member(root, "cert") : NULL;
        if (cert == NULL || strstr(cert, "-----BEGIN CERTIFICATE-----") == NULL) {
            cJSON_Delete(root);
            return refused(out, 400, "expected {\"cert\": \"-----BEGIN CERTIFICATE-----...\"}");
        }
    }
    char *json = NULL;
    int ret = fn(user, cert, who, &json);
    clink__sb_printf(out, "%s\n", json ? json : "{}");
    free(json);
    cJSON_Delete(root);
    return ret == 0 ? 200 : 409;
}

int clink__ops_restart_answer(int can, const char *msg, struct clink__sbuf *out)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddBoolToObject(o, "ok", can);
    cJSON_AddStringToObject(o, "message", msg);
    json_out(out, o);
    return can ? 202 : 501;
}

unsigned clink__ops_port_of_status(const struct clink_msg *m)
{
    static const char tag[] = "Node HTTPS port: ";
    const char *p = (const char *)m->data, *end = p + m->len;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *e = nl ? nl : end;
        if ((size_t)(e - p) > sizeof(tag) - 1 && memcmp(p, tag, sizeof(tag) - 1) == 0) {
            unsigned v = 0;
            for (const char *q = p + sizeof(tag) - 1; q < e && *q >= '0' && *q <= '9' && v <= 65535; q++) {
                v = v * 10 + (unsigned)(*q - '0');
            }
            return v <= 65535 ? v : 0;
        }
        p = e + 1;
    }
    return 0;
}

/* The link this node dialled to peer (a pool labels its links with the peer's name), open, else NULL. */
static const struct clink_conn_status *link_to(const struct clink_conn_status *links, size_t n, const char *peer)
{
    for (size_t i = 0; i < n; i++) {
        if (!links[i].is_server && links[i].open && strcmp(links[i].label, peer) == 0) {
            return &links[i];
        }
    }
    return NULL;
}

static const char *link_security(const struct clink_conn_status *st)
{
    return st == NULL                                                     ? "none"
           : st->tls_version[0] == '\0'                                   ? "plaintext"
           : st->ktls_tx == CLINK_KTLS_ON && st->ktls_rx == CLINK_KTLS_ON ? "kTLS"
                                                                          : "TLS";
}

static void add_self(cJSON *nodes, struct clink_node *node, const char *name, const char *instance, int aggregator)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "name", name);
    cJSON_AddStringToObject(o, "instance", instance);
    cJSON_AddStringToObject(o, "role", aggregator ? "aggregator" : "leaf");
    cJSON_AddBoolToObject(o, "self", 1);
    cJSON_AddStringToObject(o, "host", "");
    cJSON_AddNumberToObject(o, "port", clink_node_port(node));
    cJSON_AddNumberToObject(o, "ops_port", clink_node_https_port(node));
    cJSON_AddBoolToObject(o, "up", 1);
    cJSON_AddStringToObject(o, "secure_transport", clink_secure_transport_name(clink_node_secure_transport(node)));
    struct clink_tls_ctx *tls = clink_node_tls(node, 0);
    struct clink_cert_info ci;
    int64_t not_after = tls != NULL && clink_tls_ctx_certs(tls, &ci, 1) > 0 ? ci.not_after : 0;
    clink_tls_ctx_free(tls);
    cJSON_AddNumberToObject(o, "cert_not_after", (double)not_after);
    cJSON_AddItemToArray(nodes, o);
}

int clink__ops_cluster(struct clink_node *node, struct clink_cluster *cl, const char *name, const char *instance,
                       struct clink__sbuf *out)
{
    cJSON *root = cJSON_CreateObject();
    cJSON *nodes = cJSON_AddArrayToObject(root, "nodes");
    if (nodes == NULL) {
        cJSON_Delete(root);
        out->err = 1;
        return 500;
    }
    add_self(nodes, node, name, instance, cl != NULL);
    struct clink_peer_info *peers = cl ? calloc(MAX_PEERS, sizeof(*peers)) : NULL;
    size_t np = peers ? clink_cluster_peers(cl, peers, MAX_PEERS) : 0;
    np = np > MAX_PEERS ? MAX_PEERS : np;
    struct clink_conn_status *links = NULL;
    size_t nl = 0;
    if (np > 0 && clink_node_links(node, &links, &nl) < 0) {
        links = NULL;
        nl = 0;
    }
    /* Every peer's own answer to the status method says where its ops endpoint listens. */
    const char **names = np ? calloc(np + 1, sizeof(*names)) : NULL;
    for (size_t i = 0; names != NULL && i < np; i++) {
        names[i] = peers[i].name;
    }
    struct clink_fanout_result *res = NULL;
    size_t nres = 0;
    if (names != NULL &&
        clink_cluster_fanout(cl, CLINK_ROLE_LEAF, names, CLINK_METHOD_STATUS, NULL, 0, 2000, &res, &nres) < 0) {
        nres = 0;
    }
    for (size_t i = 0; i < np; i++) {
        const struct clink_peer_info *p = &peers[i];
        const struct clink_conn_status *l = link_to(links, nl, p->name);
        unsigned ops_port = 0;
        for (size_t k = 0; k < nres; k++) {
            if (strcmp(res[k].peer, p->name) == 0 && res[k].status == 0) {
                ops_port = clink__ops_port_of_status(&res[k].msg);
            }
        }
        cJSON *o = cJSON_CreateObject();
        cJSON_AddStringToObject(o, "name", p->name);
        cJSON_AddStringToObject(o, "role", p->role == CLINK_ROLE_AGGREGATOR ? "aggregator" : "leaf");
        cJSON_AddBoolToObject(o, "self", 0);
        cJSON_AddStringToObject(o, "host", p->host);
        cJSON_AddNumberToObject(o, "port", p->port);
        cJSON_AddNumberToObject(o, "ops_port", ops_port);
        cJSON_AddBoolToObject(o, "up", p->stats.up);
        cJSON_AddStringToObject(o, "secure_transport", link_security(l));
        cJSON_AddNumberToObject(o, "cert_not_after", l ? (double)l->peer_not_after : 0);
        cJSON_AddItemToArray(nodes, o);
    }
    clink_fanout_free(res, nres);
    free(names);
    free(links);
    free(peers);
    json_out(out, root);
    return 200;
}
