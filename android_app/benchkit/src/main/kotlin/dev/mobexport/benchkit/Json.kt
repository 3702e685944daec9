package dev.mobexport.benchkit

import org.json.JSONArray
import org.json.JSONException
import org.json.JSONObject
import org.json.JSONTokener

/*
 * The few org.json helpers benchkit needs. org.json is Android's built-in JSON library (compileOnly here: the
 * platform provides it; the JVM tests use Debian's libandroid-json-java, the same code).
 */

/** Parses one JSON value; malformed text is a [BenchmarkException] naming [what]. */
internal fun parseJson(text: String, what: String): Any {
    try {
        val value = JSONTokener(text).nextValue()
        if (value is String && !text.trimStart().startsWith("\"")) {
            throw BenchmarkException("The $what is not JSON.")
        }
        return value
    } catch (e: JSONException) {
        throw BenchmarkException("The $what is not valid JSON: ${e.message}", e)
    }
}

internal fun Any.asObject(what: String): JSONObject =
    this as? JSONObject ?: throw BenchmarkException("The $what is not a JSON object.")

/** A string value, or null when absent, null or not a string. */
internal fun JSONObject.string(key: String): String? = opt(key) as? String

/** An integral number, or null when absent, null, fractional or not a number. */
internal fun JSONObject.int(key: String): Int? = intOf(opt(key))

internal fun intOf(value: Any?): Int? {
    if (value !is Number) {
        return null
    }
    val d = value.toDouble()
    return if (d == Math.rint(d) && d >= Int.MIN_VALUE && d <= Int.MAX_VALUE) d.toInt() else null
}

/** A shape: each dimension's size, -1 for a dynamic one (null or a dimension name). */
internal fun JSONObject.dims(key: String): List<Int>? {
    val array = optJSONArray(key) ?: return null
    return (0 until array.length()).map { intOf(array.opt(it)) ?: -1 }
}

internal fun JSONObject.doubleList(key: String): List<Double>? {
    val array = optJSONArray(key) ?: return null
    return (0 until array.length()).map {
        (array.opt(it) as? Number)?.toDouble() ?: throw BenchmarkException("$key must hold numbers, got ${array.opt(it)}")
    }
}

/** Writes [value] under [key]; null is written as JSON null (org.json's put(key, null) would drop the key). */
internal fun JSONObject.field(key: String, value: Any?): JSONObject = put(key, toJsonValue(value))

internal fun toJsonValue(value: Any?): Any = when (value) {
    null -> JSONObject.NULL
    is List<*> -> JSONArray().also { array -> value.forEach { array.put(toJsonValue(it)) } }
    is Map<*, *> -> JSONObject().also { obj -> value.forEach { (k, v) -> obj.put(k.toString(), toJsonValue(v)) } }
    is Double -> if (value.isFinite()) value else throw BenchmarkException("$value is not a JSON number")
    else -> value
}

/** JSON -> plain Kotlin values (maps, lists, strings, numbers as Double, booleans, null), for comparisons. */
fun plainJson(value: Any?): Any? = when (value) {
    null, JSONObject.NULL -> null
    is JSONObject -> value.keys().asSequence().associateWith { plainJson(value.opt(it)) }
    is JSONArray -> (0 until value.length()).map { plainJson(value.opt(it)) }
    is Number -> value.toDouble()
    else -> value
}

/** Parses JSON text into plain Kotlin values (see [plainJson]). */
fun parsePlainJson(text: String): Any? = plainJson(parseJson(text, "JSON text"))

/** Typed, required reads of one JSON object that remember which keys were read, so unknown keys can be refused. */
internal class StrictObject(private val obj: JSONObject) {
    private val read = mutableSetOf<String>()

    private fun value(key: String): Any? {
        read.add(key)
        if (!obj.has(key)) {
            throw BenchmarkException("'$key' is missing")
        }
        return obj.opt(key).takeUnless { it == JSONObject.NULL }
    }

    private fun <T> typed(key: String, kind: String, value: T?): T =
        value ?: throw BenchmarkException("'$key' must be $kind, got ${obj.opt(key)}")

    fun strOrNull(key: String): String? = value(key)?.let { typed(key, "a string", it as? String) }

    fun str(key: String): String = typed(key, "a string", strOrNull(key))

    fun intOrNull(key: String): Int? = value(key)?.let { typed(key, "an integer", intOf(it)) }

    fun int(key: String): Int = typed(key, "an integer", intOrNull(key))

    fun numOrNull(key: String): Double? = value(key)?.let { typed(key, "a number", (it as? Number)?.toDouble()) }

    fun num(key: String): Double = typed(key, "a number", numOrNull(key))

    private fun list(key: String): List<Any?> {
        val array = typed(key, "an array", value(key) as? JSONArray)
        return (0 until array.length()).map { array.opt(it) }
    }

    fun intList(key: String): List<Int> = list(key).map { typed(key, "integers", intOf(it)) }

    fun numList(key: String): List<Double> = list(key).map { typed(key, "numbers", (it as? Number)?.toDouble()) }

    fun stringMap(key: String): Map<String, String> {
        val o = typed(key, "an object", value(key) as? JSONObject)
        return o.keys().asSequence().associateWith { typed(key, "string values", o.opt(it) as? String) }
    }

    fun refuseUnread() {
        val unknown = obj.keys().asSequence().filter { it !in read }.sorted().toList()
        if (unknown.isNotEmpty()) {
            throw BenchmarkException("unknown keys $unknown")
        }
    }
}
