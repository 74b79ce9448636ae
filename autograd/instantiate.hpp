// Every op runs in float32 (training) and float64 (gradient checks): heavy templates are
// compiled once here, in the .cpp files, not in every file that uses them.
#pragma once
#define FLOWGRAD_FOR_EACH_SCALAR(M) M(float) M(double)
