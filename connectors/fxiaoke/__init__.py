"""The 纷享销客 Fxiaoke (ShareCRM) connector: corpAccessToken auth, preset and custom (``__c``)
objects, offset paging up to its 10,000 limit then ``_id``-keyed paging, ``life_status`` as
crmsync's lifecycle, and write-back through Fxiaoke's native 作废 (invalid) / 恢复 (recover) /
delete endpoints, within per-endpoint rate limits.

See README.md in this directory ("Connect Fxiaoke").
"""
