// placeholder: filled by its owner
#include <gtest/gtest.h>
