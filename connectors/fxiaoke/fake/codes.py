"""errorCodes the fake answers. The first group is documented (reference, section A); the rest
are the fake's own numbers for errors whose real codes are not public (Assumption): the
connector never branches on them, it asks the record's state instead."""

# documented
TOKEN_EXPIRED = 20016
CORP_NOT_FOUND = 20017
BAD_APP_CREDENTIALS = 10006
OFFSET_RANGE = 10013
RATE_LIMITED = 30004
BUSY = -1
DAILY_QUOTA = 30002
NO_QUOTA = 30003

# the fake's own (Assumption: real codes unknown)
BAD_PARAM = 10002
BAD_USER = 20005
NOT_FOUND = 320001
ALREADY_INVALID = 320002
NOT_INVALID = 320003
NO_OBJECT = 320004
LOCKED = 320005
NO_FIELD = 320006
