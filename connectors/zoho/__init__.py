"""The Zoho CRM connector (REST API v8): OAuth self-client refresh tokens, every data centre,
call-minimal pulls (field groups of 50, ``page`` then ``page_token`` past 2,000 records,
``If-Modified-Since`` increments, deleted-record sync) and batched status write-back.

See README.md in this directory ("Connect Zoho CRM").
"""
