#include "CShoalSystem.h"
