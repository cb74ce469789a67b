/*
 * Every default of a node built by the server layer, as values, in one
 * place: the config reader starts each file from clink__config_defaults,
 * and clink_server_opts_default says the same for programs that build a
 * node from options. The transport's and the pool's own defaults (buffer
 * sizes, pool sizes) stay with them; the ones here are what a memsql.cnf
 * can set.
 */
#include "server/server_int.h"

#include <stdio.h>
#include <string.h>

#define DEFAULT_BIND_ADDRESS "127.0.0.1"
#define DEFAULT_PORT         3306 /* MySQL's and MemSQL's */
#define DEFAULT_DRAIN_MS     2000

const struct clink_server_opts clink_server_opts_default = {
    .listen = DEFAULT_BIND_ADDRESS ":3306",
    .min_tls_version = CLINK_TLS_1_3,
    .mysql = CLINK_SERVER_ON,
    .ktls = CLINK_KTLS_AUTO,
    .workers = 0, /* one per online CPU, counted when the node starts */
    .max_connections = CLINK_DEFAULT_MAX_CONNECTIONS,
    .ops = CLINK_SERVER_ON,
    .ops_port = CLINK_OPS_DEFAULT_PORT,
    .drain_ms = DEFAULT_DRAIN_MS,
    .log_level = CLINK_LOG_WARN,
};

void clink__config_defaults(struct clink_config *c)
{
    memset(c, 0, sizeof(*c));
    c->tls_version = clink_server_opts_default.min_tls_version;
    c->ssl_client_cert = CLINK_CLIENT_CERT_REQUIRED;
    c->require_secure_transport = 1;
    c->secure_transport = CLINK_SECURE_REQUIRE_TLS;
    c->mysql = clink_server_opts_default.mysql == CLINK_SERVER_ON;
    c->grant_creates_user = 1; /* MySQL 5.x's and MemSQL's GRANT (docs/mysql.md) */
    c->ops = clink_server_opts_default.ops == CLINK_SERVER_ON;
    c->ops_port = (uint16_t)clink_server_opts_default.ops_port;
    c->ssl_key_mode_check = 1;
    snprintf(c->bind_address, sizeof(c->bind_address), "%s", DEFAULT_BIND_ADDRESS);
    c->port = DEFAULT_PORT;
    c->ktls = clink_server_opts_default.ktls;
    c->max_connections = clink_server_opts_default.max_connections;
    c->max_node_links = CLINK_DEFAULT_MAX_NODE_LINKS;
    c->wait_timeout = CLINK_DEFAULT_WAIT_TIMEOUT_S;
    c->tcp_keepalive_idle = CLINK_DEFAULT_TCP_KEEPALIVE_S;
}
