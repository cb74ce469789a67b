/* Placeholder: filled in by the work in progress. */
#include <criterion/criterion.h>
