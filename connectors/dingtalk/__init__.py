"""The DingTalk CRM connector (钉钉客户管理): one app access token for two APIs (the v1.0 API
for customers and writes, the old topapi for contacts and follow records), ``nextToken`` /
``cursor`` paging in ascending modified time, archive/void/restore through the admin's 状态
select field, purge, and QPS-limit answers backed off.

See the "Connect DingTalk CRM" section of the project README.
"""
