// The one translation unit of fleetga-host that compiles Asio's implementation (the agent has
// its own copy in agent/asio_impl.cpp; the tool must not depend on the agent library).
#include <boost/asio/impl/src.hpp>
