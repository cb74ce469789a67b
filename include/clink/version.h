/* clink's version, for programs and for what the node reports about itself. */
#ifndef CLINK_VERSION_H
#define CLINK_VERSION_H

#define CLINK_VERSION_STRING "0.1.0"

#endif
