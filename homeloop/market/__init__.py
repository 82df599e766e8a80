"""The market simulator v1: a seeded marketplace with known ground truth and known noise."""

from homeloop.market.clock import SimClock
from homeloop.market.history import deal_history
from homeloop.market.users import UserModel
from homeloop.market.world import Listing, Market

__all__ = ["Listing", "Market", "SimClock", "UserModel", "deal_history"]
