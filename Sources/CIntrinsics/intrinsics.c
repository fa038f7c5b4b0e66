// Header-only module (see include/CIntrinsics.h); SwiftPM needs one source file per C target.
#include "CIntrinsics.h"
