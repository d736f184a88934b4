"""The transactional outbox on PostgreSQL.

Listeners with ``delivery: outbox`` write their notifications as rows of one table
(:mod:`.sql`), through the caller's transaction when ``trigger`` is given its ``connection``
(:mod:`.connections`, :mod:`.writer`); relay processes claim the committed rows and deliver
them with the listeners' own kinds, retries and breakers (:mod:`.relay`). Importing this
package imports neither psycopg nor the relay.
"""
