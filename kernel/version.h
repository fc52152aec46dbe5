/* The kernel's version string, for the boot banner and the monitor. */
#pragma once

#ifndef SLAYEROS_VERSION
#define SLAYEROS_VERSION "0.1.0"
#endif
