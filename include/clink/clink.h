/* clink: the umbrella header. Everything public, nothing internal. */
#ifndef CLINK_CLINK_H
#define CLINK_CLINK_H

#include "clink/accounts.h"
#include "clink/admin.h"
#include "clink/auth.h"
#include "clink/config.h"
#include "clink/cq.h"
#include "clink/error.h"
#include "clink/http.h"
#include "clink/log.h"
#include "clink/mysql.h"
#include "clink/ops.h"
#include "clink/pool.h"
#include "clink/server.h"
#include "clink/stream.h"
#include "clink/transport.h"
#include "clink/version.h"

#endif
